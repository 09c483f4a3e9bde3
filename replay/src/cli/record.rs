//! `mmreplay record`: the command line of `mmreplay_record::capture` (the capture itself, its
//! tracefs instance, ring-buffer readers, signals and sidecars live in the `mmreplay-record`
//! crate). This module only turns arguments into [`capture::Options`], prints the notes the
//! capture hands back and, with `--json`, its [`capture::Summary`]; it must never touch tracefs.

use mmreplay_record::capture::{self, Ending, Output, Source as TextSource};
use mmreplay_record::tracefs::DEFAULT_ROOT;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Read the `trace` file once the command has exited.
    Trace,
    /// Stream `trace_pipe` while the command runs (the buffer cannot overflow as easily, and the
    /// text carries `[LOST n EVENTS]` markers when it does).
    Pipe,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output file (default `<cmd-name>-<UTC date>.trace.zst`).
    #[arg(short = 'o', long)]
    pub out: Option<PathBuf>,
    /// `default`, or comma-separated `system:event` / `system:*` (may include `default`).
    #[arg(long, default_value = "default")]
    pub events: String,
    /// Per-CPU ring buffer size in KiB (default: from the machine, 1/256 of RAM over the CPUs,
    /// 4 MiB to 256 MiB per CPU).
    #[arg(long, value_parser = clap::value_parser!(u64).range(4..))]
    pub buffer_kb: Option<u64>,
    /// Write zstd-compressed ftrace text (`--from`) instead of a trace.dat (also chosen by an
    /// output name ending in `.zst`).
    #[arg(long)]
    pub text: bool,
    /// Print the irq/preempt flags column (`d..1.`).
    #[arg(long, value_enum, default_value = "on")]
    pub irq_info: OnOff,
    /// Record the thread-group id of each event (`options/record-tgid`).
    #[arg(long)]
    pub tgid: bool,
    /// Trace only this recorder, the command and their descendants (`set_event_pid` with
    /// `options/event-fork`). Drops other tasks' events, including TLB-flush IPIs received by
    /// CPUs that run other tasks, and switches between two other tasks.
    #[arg(long)]
    pub follow: bool,
    /// Where the text comes from (implies --text; default `trace`).
    #[arg(long, value_enum)]
    pub from: Option<Source>,
    /// Save the raw per-CPU ring-buffer pages (`per_cpu/cpuN/trace_pipe_raw`) with the event
    /// `format` files, `saved_cmdlines` and the text symbols of `/proc/kallsyms` into OUT as a
    /// directory (default `<cmd-name>-<UTC date>.raw`) instead of text: the kernel skips the text
    /// formatting. `mmreplay stats OUT` reads it.
    #[arg(long, conflicts_with_all = ["from", "zstd_level", "text"])]
    pub raw: bool,
    /// Also trace this kernel function with a kprobe event (`p:mmreplay/SYMBOL`), removed again
    /// afterwards: the kernel's own count of calls, in the same trace. Repeatable; a set name
    /// expands to several (`rmap` = folio_referenced_one, lru_gen_look_around,
    /// try_to_unmap_one; `ipi` = flush_tlb_func run on another CPU than its initiator,
    /// tlb_remove_table_smp_sync: IPI receipts by callback). Needs CONFIG_KPROBE_EVENTS.
    #[arg(long = "probe", value_name = "SYMBOL|SET")]
    pub probes: Vec<String>,
    /// `trace_clock` to use.
    #[arg(long, default_value = "local")]
    pub clock: String,
    /// zstd compression level (1-22; default 3 for trace.dat, whose pages are compressed after
    /// the workload ends, 9 for text).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: Option<i32>,
    /// Do not snapshot the address spaces of the processes that exist at the start
    /// (`OUT.procs.zst`, see `procsnap.rs`).
    #[arg(long)]
    pub no_procs: bool,
    /// Most pages the process snapshot keeps in all (lowest addresses of each process first,
    /// at most 65,536 per process); what is left out is counted in the snapshot.
    #[arg(long, default_value_t = 1 << 20)]
    pub procs_max_pages: usize,
    /// Sample the workload's writes between faults (`OUT.access.json`, see `access.rs`): clear
    /// the soft-dirty bits of its processes every `--access-interval-ms`, so the next write to
    /// each page faults in the trace. Needs CONFIG_MEM_SOFT_DIRTY; uses trace_clock `mono`.
    #[arg(long)]
    pub access: bool,
    /// Milliseconds between two `--access` passes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub access_interval_ms: u64,
    /// tracefs root (for testing against another mount point).
    #[arg(long, default_value = DEFAULT_ROOT, hide = true)]
    pub tracefs: PathBuf,
    /// Journal of what the recorder made in tracefs (its instance, kprobes), for the next
    /// recorder to clean up after a SIGKILL.
    #[arg(long, default_value = "/run/mmreplay-record.json", hide = true)]
    pub journal: PathBuf,
    /// Lock held while recording: one recorder at a time.
    #[arg(long, default_value = "/run/mmreplay-record.lock", hide = true)]
    pub lock: PathBuf,
    /// Print a one-line JSON summary on stdout (output, events, lost events per CPU, duration,
    /// sidecar facts).
    #[arg(long)]
    pub json: bool,
    /// With --json: indent it.
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub cmd: Vec<String>,
}

/// `-o NAME.zst`: the name asks for zstd-compressed text.
fn zst_name(a: &Args) -> bool {
    a.out
        .as_ref()
        .is_some_and(|o| o.extension().is_some_and(|e| e == "zst"))
}

/// The output kind the flags ask for.
fn output_of(a: &Args) -> Output {
    if a.raw {
        Output::RawDir
    } else if a.text || a.from.is_some() || zst_name(a) {
        Output::Text(match a.from.unwrap_or(Source::Trace) {
            Source::Trace => TextSource::Trace,
            Source::Pipe => TextSource::Pipe,
        })
    } else {
        Output::Dat
    }
}

/// The capture's options from the command line.
fn options(a: &Args) -> capture::Options {
    capture::Options {
        out: a.out.clone(),
        kind: output_of(a),
        events: a.events.clone(),
        buffer_kb: a.buffer_kb,
        irq_info: a.irq_info == OnOff::On,
        tgid: a.tgid,
        follow: a.follow,
        probes: a.probes.clone(),
        clock: a.clock.clone(),
        zstd_level: a.zstd_level,
        procs: !a.no_procs,
        procs_max_pages: a.procs_max_pages,
        access: a.access,
        access_interval_ms: a.access_interval_ms,
        tracefs: a.tracefs.clone(),
        journal: a.journal.clone(),
        lock: a.lock.clone(),
        cmd: a.cmd.clone(),
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if zst_name(&a) && !a.text && a.from.is_none() && !a.raw {
        eprintln!(
            "mmreplay record: -o names a .zst file: writing zstd-compressed text (as --text); \
             name it .dat for a trace.dat"
        );
    }
    let summary = capture::run(&options(&a), &mut |n| eprintln!("mmreplay record: {n}"))?;
    if a.json {
        let v = serde_json::to_value(&summary)?;
        super::json_out::emit("record", v, a.pretty)?;
    }
    Ok(match summary.ending {
        Ending::Success => ExitCode::SUCCESS,
        Ending::WorkloadFailed => ExitCode::from(1),
        Ending::Interrupted => ExitCode::from(130),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use mmreplay_record::capture::{check_output_options, default_dat_out, default_raw_out};
    use mmreplay_record::tracefs;
    use std::time::{Duration, UNIX_EPOCH};

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    fn parse(v: &[&str]) -> Result<Args, clap::Error> {
        T::try_parse_from(std::iter::once("record").chain(v.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn defaults_and_command_after_double_dash() {
        let a = parse(&["--", "ls", "-l", "--color"]).unwrap();
        assert_eq!(a.cmd, vec!["ls", "-l", "--color"]);
        assert_eq!(a.events, "default");
        assert_eq!(a.irq_info, OnOff::On);
        assert_eq!(a.from, None);
        assert_eq!(output_of(&a), Output::Dat);
        assert!(!a.text);
        assert!(!a.tgid);
        assert!(!a.follow);
        assert_eq!(a.buffer_kb, None);
        assert_eq!(a.clock, "local");
        assert_eq!(a.tracefs, PathBuf::from(DEFAULT_ROOT));
        assert_eq!(a.journal, PathBuf::from("/run/mmreplay-record.json"));
        assert_eq!(a.lock, PathBuf::from("/run/mmreplay-record.lock"));
    }

    #[test]
    fn output_kind_and_options_that_need_text() {
        let kind = |v: &[&str]| output_of(&parse(v).unwrap());
        assert_eq!(kind(&["--", "ls"]), Output::Dat);
        assert_eq!(
            kind(&["--text", "--", "ls"]),
            Output::Text(TextSource::Trace)
        );
        assert_eq!(
            kind(&["--from", "pipe", "--", "ls"]),
            Output::Text(TextSource::Pipe)
        );
        assert_eq!(kind(&["--raw", "--", "ls"]), Output::RawDir);
        assert!(parse(&["--raw", "--text", "--", "ls"]).is_err());
        // Nothing a trace.dat cannot honour passes silently.
        assert_eq!(
            kind(&["-o", "x.trace.zst", "--", "ls"]),
            Output::Text(TextSource::Trace)
        );
        for (bad, why) in [
            (&["--tgid", "--", "ls"][..], "needs --text"),
            (&["--irq-info", "off", "--", "ls"], "needs --text"),
        ] {
            let a = parse(bad).unwrap();
            let e = check_output_options(&options(&a)).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
        for good in [
            &["-o", "x.trace.zst", "--text", "--tgid", "--", "ls"][..],
            &["-o", "x.trace.dat", "--", "ls"],
            &["-o", "x.zst", "--from", "pipe", "--", "ls"],
        ] {
            let a = parse(good).unwrap();
            assert!(check_output_options(&options(&a)).is_ok(), "{good:?}");
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_795_316_645);
        assert_eq!(
            default_dat_out("/usr/bin/python3", t),
            PathBuf::from("python3-20261122T030405Z.trace.dat")
        );
    }

    #[test]
    fn all_options() {
        let a = parse(&[
            "-o",
            "x.trace.zst",
            "--events",
            "tlb:*,ipi:ipi_send_cpu",
            "--buffer-kb",
            "65536",
            "--irq-info",
            "off",
            "--tgid",
            "--follow",
            "--from",
            "pipe",
            "--",
            "true",
        ])
        .unwrap();
        assert_eq!(a.out, Some(PathBuf::from("x.trace.zst")));
        assert_eq!(a.buffer_kb, Some(65536));
        assert_eq!(a.irq_info, OnOff::Off);
        assert!(a.tgid);
        assert!(a.follow);
        assert_eq!(a.from, Some(Source::Pipe));
        assert_eq!(tracefs::parse_event_list(&a.events).unwrap().len(), 2);
    }

    #[test]
    fn probes_repeat_and_expand() {
        let a = parse(&[
            "--probe",
            "rmap",
            "--probe",
            "shrink_folio_list",
            "--",
            "true",
        ])
        .unwrap();
        assert_eq!(a.probes, vec!["rmap", "shrink_folio_list"]);
        assert_eq!(
            tracefs::expand_probes(&a.probes).unwrap(),
            vec![
                "folio_referenced_one",
                "lru_gen_look_around",
                "try_to_unmap_one",
                "shrink_folio_list"
            ]
        );
        assert!(parse(&["--", "true"]).unwrap().probes.is_empty());
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            &["ls"][..],
            &[],
            &["--"],
            &["--irq-info", "maybe", "--", "ls"],
            &["--from", "perf", "--", "ls"],
            &["--buffer-kb", "0", "--", "ls"],
            &["--buffer-kb", "-5", "--", "ls"],
            &["--zstd-level", "40", "--", "ls"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn raw_flag_and_its_conflicts() {
        let a = parse(&["--raw", "-o", "cap.raw", "--events", "tlb:*", "--", "dd"]).unwrap();
        assert!(a.raw);
        assert_eq!(a.out, Some(PathBuf::from("cap.raw")));
        assert!(!parse(&["--", "dd"]).unwrap().raw);
        // Text-only options make no sense with raw pages.
        for bad in [
            &["--raw", "--from", "pipe", "--", "dd"][..],
            &["--raw", "--from", "trace", "--", "dd"],
            &["--raw", "--zstd-level", "3", "--", "dd"],
            &["--raw"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let t = UNIX_EPOCH + Duration::from_secs(1_795_316_645);
        assert_eq!(
            default_raw_out("/bin/dd", t),
            PathBuf::from("dd-20261122T030405Z.raw")
        );
    }
}
