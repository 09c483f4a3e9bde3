//! The 6.1 LTS captures (corpus/captures/k61-*, made in a qemu guest by
//! corpus/guest/capture-61.sh): they parse without loss, replay, and the kernel's own counts the
//! replay reports (`fidelity.kernel_counts`, replay/src/kernel_counts.rs) equal what the
//! parser's `stats` counts and what the text itself says. 6.1 logs no IPI sends, so IPIs are
//! receipts there; a counter whose event was not recorded must be null, never 0.

use std::io::Read;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mmreplay");

fn k61() -> Vec<String> {
    let dir = format!("{}/../corpus/captures", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus/captures")
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.contains("/k61-") && p.ends_with(".trace.zst"))
        .collect();
    v.sort();
    v
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = Command::new(BIN).args(args).output().expect("run mmreplay");
    assert_eq!(
        o.status.code(),
        Some(0),
        "mmreplay {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON report")
}

fn text(trace: &str) -> String {
    let mut s = String::new();
    zstd::Decoder::new(std::fs::File::open(trace).unwrap())
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// The number after `key=` in a payload.
fn field(line: &str, key: &str) -> Option<u64> {
    let i = line.find(key)? + key.len();
    line[i..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn k61_captures_parse_replay_and_their_kernel_counts_agree() {
    let all = k61();
    assert!(all.len() >= 2, "only {} k61 captures", all.len());
    let mut with_probes = 0;
    for trace in &all {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{trace}.meta.json")).expect("sidecar"),
        )
        .unwrap();
        assert!(
            meta["kernel"]["release"]
                .as_str()
                .is_some_and(|r| r.starts_with("6.1.")),
            "{trace}: not a 6.1 capture"
        );
        let stats = json(&["stats", trace, "--json"]);
        assert_eq!(stats["unparsed_lines"], 0, "{trace}");
        assert_eq!(stats["lost_events"], 0, "{trace}");
        let ev = |n: &str| stats["events"][n].as_u64().unwrap_or(0);
        assert_eq!(ev("ipi_send_cpu") + ev("csd_queue_cpu"), 0, "{trace}");

        let r = json(&["replay", trace, "--policies", "reference", "--json"]);
        let k = &r["fidelity"]["kernel_counts"];
        let obs = |n: &str| k[n]["observed"].as_u64();
        assert_eq!(k["ipi_view"], "receipts", "{trace}");
        // 6.1 logs no IPI sends: the old fidelity figure must not claim "observed 0".
        assert_eq!(
            r["fidelity"]["ipis"]["observed"],
            serde_json::Value::Null,
            "{trace}"
        );
        // Observed when the records show the event was recorded (here: it occurred).
        let some = |n: u64| (n > 0).then_some(n);
        assert_eq!(
            obs("ipi_receipts"),
            some(ev("call_function_entry") + ev("call_function_single_entry")),
            "{trace}"
        );
        assert!(ev("tlb_flush") > 0, "{trace}");
        assert_eq!(
            obs("remote_flush_requests"),
            Some(
                stats["tlb_flush_by_reason"]["remote_ipi_send"]
                    .as_u64()
                    .unwrap_or(0)
            ),
            "{trace}"
        );
        // Independently of the parser: the text's own lines.
        let t = text(trace);
        let reclaimed: u64 = t
            .lines()
            .filter(|l| l.contains("_reclaim_end: nr_reclaimed="))
            .filter_map(|l| field(l, "nr_reclaimed="))
            .sum();
        let receipts = t
            .lines()
            .filter(|l| l.contains(" call_function_entry: vector=252"))
            .count()
            + t.lines()
                .filter(|l| l.contains(" call_function_single_entry: vector=251"))
                .count();
        assert_eq!(obs("ipi_receipts"), some(receipts as u64), "{trace}");
        let vmscan = t.contains(": mm_vmscan_");
        assert_eq!(obs("reclaimed"), vmscan.then_some(reclaimed), "{trace}");

        let probes: Vec<&str> = meta["probes"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        for (counter, func) in [
            ("rmap_referenced_visits", "folio_referenced_one"),
            ("lookarounds", "lru_gen_look_around"),
            ("rmap_unmap_visits", "try_to_unmap_one"),
        ] {
            if probes.contains(&func) {
                let hits = t
                    .lines()
                    .filter(|l| l.contains(&format!(" {func}: ({func}+0x")))
                    .count() as u64;
                assert_eq!(obs(counter), Some(hits), "{trace}: {counter}");
                assert_eq!(obs(counter), Some(ev(func)), "{trace}: {counter}");
            } else {
                assert_eq!(k[counter]["observed"], serde_json::Value::Null, "{trace}");
            }
        }
        // `--probe ipi`: receipts by callback, each hit one line (flush_tlb_func's carries its
        // fetch arg `ini=`). From the records alone a set that never hit is unknown (null).
        let hits = |func: &str| {
            t.lines()
                .filter(|l| l.contains(&format!(" {func}: ({func}+0x")))
                .count() as u64
        };
        let ipi = [
            ("tlb_receipts", "flush_tlb_func"),
            ("table_sync_receipts", "tlb_remove_table_smp_sync"),
        ];
        let ipi_hit = ipi.iter().any(|(_, f)| hits(f) > 0);
        for (counter, func) in ipi {
            let want = (probes.contains(&func) && ipi_hit).then(|| hits(func));
            assert_eq!(obs(counter), want, "{trace}: {counter}");
        }
        if probes.contains(&"try_to_unmap_one") {
            with_probes += 1;
            // MGLRU on: look-arounds happen; off: the probe was there and never fired.
            let lru_gen_on = meta["kernel"]["lru_gen_enabled"] != "0x0000";
            let la = obs("lookarounds").unwrap();
            assert_eq!(la > 0, lru_gen_on, "{trace}: {la} look-arounds");
            assert!(obs("rmap_unmap_visits").unwrap() > 1000, "{trace}");
            assert!(
                meta["memcg"]["limit_bytes"].as_u64() == Some(32 << 20),
                "{trace}"
            );
        }
    }
    assert!(with_probes >= 1, "no k61 capture with kprobe counts");
}
