#![no_main]
//! `ops`: structure-aware. Arbitrary bytes become a kernel profile and a list of choices that
//! `mmreplay_reference::testing::lower_choices` turns into an op stream (mostly valid: ids exist,
//! addresses in a small window), interleaved with raw ops the lowering would never produce
//! (unknown mms, unaligned and wrapping ranges). Checks: no model panics on any of them, and
//! every registered policy is deterministic, free-running and in lockstep behind the reference:
//! two runs of the same ops give the same outcomes, counters, violations and snapshot.
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mmreplay_candidates::registry::POLICIES;
use mmreplay_reference::engine::Engine;
use mmreplay_reference::op::{AccessKind, MmId, Op};
use mmreplay_reference::profile::{Base, CpumaskMode, KernelProfile, LruKind, ThpMode};
use mmreplay_reference::testing::{lower_choices, Choice, GenConfig};

#[derive(Arbitrary, Debug)]
enum FChoice {
    /// Through `lower_choices`, clamped to the property tests' ranges (`Choice::clamped`).
    Choice(Choice),
    /// Not through `lower_choices`: an op with raw fields.
    Raw(RawOp),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum RawOp {
    Access {
        cpu: u8,
        mm: u8,
        va: u64,
        write: bool,
    },
    Munmap {
        cpu: u8,
        mm: u8,
        addr: u64,
        len: u64,
    },
    Mprotect {
        cpu: u8,
        mm: u8,
        addr: u64,
        len: u64,
        prot: u8,
    },
    Mremap {
        cpu: u8,
        mm: u8,
        old_addr: u64,
        old_len: u64,
        new_addr: u64,
        new_len: u64,
    },
    Brk {
        cpu: u8,
        mm: u8,
        brk: u64,
    },
    Exit {
        cpu: u8,
        mm: u8,
    },
    Fork {
        cpu: u8,
        parent: u8,
        child: u8,
    },
    Reclaim {
        n: u16,
    },
    ReclaimScan {
        n: u8,
        memcg: bool,
        file: Option<bool>,
        reclaimed: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    nr_cpus: u8,
    k61: bool,
    classic: bool,
    trim: bool,
    thp: u8,
    choices: Vec<FChoice>,
}

fn choice(c: &FChoice) -> Option<Choice> {
    match c {
        FChoice::Choice(c) => Some(c.clone().clamped()),
        FChoice::Raw(_) => None,
    }
}

fn raw(r: RawOp, nr_cpus: u32) -> Op {
    let cpu = |c: u8| u32::from(c) % nr_cpus;
    let mm = |m: u8| MmId(u32::from(m % 8));
    match r {
        RawOp::Access {
            cpu: c,
            mm: m,
            va,
            write,
        } => Op::Access {
            cpu: cpu(c),
            mm: mm(m),
            va,
            kind: if write {
                AccessKind::Write
            } else {
                AccessKind::Read
            },
        },
        RawOp::Munmap {
            cpu: c,
            mm: m,
            addr,
            len,
        } => Op::Munmap {
            cpu: cpu(c),
            mm: mm(m),
            addr,
            len,
        },
        RawOp::Mprotect {
            cpu: c,
            mm: m,
            addr,
            len,
            prot,
        } => Op::Mprotect {
            cpu: cpu(c),
            mm: mm(m),
            addr,
            len,
            prot: u32::from(prot & 7),
        },
        RawOp::Mremap {
            cpu: c,
            mm: m,
            old_addr,
            old_len,
            new_addr,
            new_len,
        } => Op::Mremap {
            cpu: cpu(c),
            mm: mm(m),
            old_addr,
            old_len,
            new_addr,
            new_len,
        },
        RawOp::Brk { cpu: c, mm: m, brk } => Op::Brk {
            cpu: cpu(c),
            mm: mm(m),
            brk,
        },
        RawOp::Exit { cpu: c, mm: m } => Op::Exit {
            cpu: cpu(c),
            mm: mm(m),
        },
        RawOp::Fork {
            cpu: c,
            parent,
            child,
        } => Op::Fork {
            cpu: cpu(c),
            parent: mm(parent),
            child: MmId(u32::from(child) + 1000),
        },
        RawOp::Reclaim { n } => Op::Reclaim {
            cpu: 0,
            nr_to_reclaim: u32::from(n),
        },
        RawOp::ReclaimScan {
            n,
            memcg,
            file,
            reclaimed,
        } => Op::ReclaimScan {
            cpu: 0,
            nr_scanned: u32::from(n),
            memcg: u32::from(memcg),
            file,
            nr_reclaimed: u32::from(reclaimed),
        },
    }
}

/// Everything a run leaves that must be the same on a second run.
fn outcome(
    e: &mut dyn Engine,
    ops: &[Op],
    mut step: impl FnMut(&mut dyn Engine, usize, &Op) -> String,
) -> (Vec<String>, String) {
    let mut results = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        results.push(step(e, i, op));
    }
    e.finish();
    let end = format!(
        "{:?}\n{:?}\n{}\n{:016x}",
        e.counters(),
        e.violations(),
        e.snapshot().to_text(),
        e.state_hash()
    );
    (results, end)
}

fuzz_target!(|inp: Input| {
    if inp.choices.len() > 400 {
        return;
    }
    let nr_cpus = u32::from(inp.nr_cpus % 8) + 1;
    let profile = KernelProfile {
        base: if inp.k61 { Base::K61 } else { Base::Knew },
        nr_cpus,
        cpumask_mode: if inp.trim {
            CpumaskMode::TrimByFlush
        } else {
            CpumaskMode::ClearOnSwitch
        },
        thp: match inp.thp % 3 {
            0 => ThpMode::Madvise,
            1 => ThpMode::Always,
            _ => ThpMode::Never,
        },
        lru: if inp.classic {
            LruKind::Classic
        } else {
            LruKind::Mglru { min_ttl_ms: 0 }
        },
        full_check_every: 16,
        ..KernelProfile::default()
    };
    let cfg = GenConfig {
        nr_cpus,
        max_mms: 4,
    };
    // Valid runs from `lower_choices`, raw ops spliced in where the input put them.
    let mut ops = Vec::new();
    let mut run = Vec::new();
    for c in &inp.choices {
        match (choice(c), c) {
            (Some(ch), _) => run.push(ch),
            (None, FChoice::Raw(r)) => {
                ops.extend(lower_choices(cfg, &run));
                run.clear();
                ops.push(raw(*r, nr_cpus));
            }
            (None, _) => {}
        }
    }
    ops.extend(lower_choices(cfg, &run));

    let free = |e: &mut dyn Engine, _: usize, op: &Op| format!("{:?}", e.apply(op));
    let mut scripts = Vec::new();
    let (ref_steps, ref_end) = {
        let spec = mmreplay_candidates::parse("reference").expect("reference policy");
        let mut e = spec.build(&profile);
        outcome(&mut *e, &ops, |e, _, op| {
            let (r, s) = e.apply_recording(op);
            scripts.push(s);
            format!("{r:?}")
        })
    };
    for entry in POLICIES {
        let spec = mmreplay_candidates::parse(entry.name).expect("registered policy parses");
        // Free-running, twice.
        let a = outcome(&mut *spec.build(&profile), &ops, free);
        let b = outcome(&mut *spec.build(&profile), &ops, free);
        assert_eq!(a, b, "policy {} not deterministic (free)", entry.name);
        // Lockstep behind the reference's reclaim scripts, twice.
        let lock =
            |e: &mut dyn Engine, i: usize, op: &Op| match scripts.get(i).and_then(|s| s.as_ref()) {
                Some(s) => format!("{:?}", e.apply_imposed(op, s)),
                None => format!("{:?}", e.apply(op)),
            };
        let c = outcome(&mut *spec.build(&profile), &ops, lock);
        let d = outcome(&mut *spec.build(&profile), &ops, lock);
        assert_eq!(c, d, "policy {} not deterministic (lockstep)", entry.name);
        if entry.name == "reference" {
            assert_eq!(
                a,
                (ref_steps.clone(), ref_end.clone()),
                "reference: recording run differs"
            );
        }
    }
});
