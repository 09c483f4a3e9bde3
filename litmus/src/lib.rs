//! Litmus scenarios: a tiny line-oriented language for HAND-WRITTEN op sequences
//! (`corpus/litmus/*.litmus`) that reproduce historical MM bugs (mm-semantics.md D), with the
//! verdict each policy must get written in the file itself. Pins, DIO references and GUP have
//! no tracepoints, so these files name model operations directly: every op line maps to exactly
//! one [`mmreplay_reference::Op`] (an `access`/`fault` line with `repeat=N` is N ops).
//!
//! This module parses files, runs them through an engine and checks expectations; it never
//! builds engines (callers choose policies, including test-only negative controls), never
//! panics on input, and never decides what a contract allows (`Contract::check` does).
//!
//! # Syntax
//! ```text
//! # any comment
//! # profile: cpus=4 base=k61 mm_walk=0 mig_ad=1 rcu_table_free=1
//! # mode: lockstep                       (or free-running; for contract checks)
//! # expect reference: clean
//! # expect negative:free-before-flush: violation I1 step 5
//! # expect lookaround: diverged_within_contract   (or same, contract_breach FIELD)
//! # check batched-unshare: ipi_sends_table_sync < reference
//! exec cpu=0 mm=1
//! mmap cpu=0 mm=1 addr=0x7f0000000000 len=2m prot=rw flags=private|anonymous
//! mmap cpu=0 mm=1 addr=0x40000000 len=1g prot=rw flags=shared file=5 kind=hugetlbfs
//! access cpu=1 mm=1 va=0x7f0000000000 kind=write repeat=64 stride=0x1000
//! fork cpu=0 parent=1 child=2
//! switch cpu=1 mm=2                      (mm=none: kernel thread, lazy TLB)
//! pin cpu=0 mm=1 va=0x... hold=1 write   unpin hold=1
//! getref cpu=0 mm=1 va=0x... hold=2      putref hold=2 write
//! madvise cpu=0 mm=1 addr=.. len=.. advice=free
//! reclaim cpu=0 nr=64                    migrate cpu=0 mm=1 va=0x... (or pfn=N)
//! memcg mm=1 memcg=2                     reclaim cpu=0 nr=64 memcg=2   (memcg reclaim)
//! ```
//! Steps are 0-based op indices, as in `Violation::step`; `violation I1 line 14` names the op
//! by its line instead.
//!
//! Its own crate, below the `mmreplay` binary: it needs only the model and the contracts (not
//! the lowering), so the CLI (`check`, `minimize`, `replay FILE.litmus`), `mmreplay`'s library
//! and the workspace tests all use the one parser.

// Library code reports errors; a panic on user data is a bug (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use mmreplay_candidates::contract::{Breach, Contract, Mode, Observed, Subject};
use mmreplay_candidates::verdict::Verdict;
use mmreplay_reference::counters::Counters;
use mmreplay_reference::engine::ReclaimScript;
use mmreplay_reference::invariant::{Invariant, Violation};
use mmreplay_reference::model::ModelError;
use mmreplay_reference::op::{madv, map, prot, MigrateBatchStep};
use mmreplay_reference::profile::{Base, CpumaskMode, KernelProfile};
use mmreplay_reference::snapshot::Snapshot;
use mmreplay_reference::{
    AccessKind, Engine, FileId, FileKind, FileRef, HoldId, MigrateTarget, MmId, Op,
};

/// Largest `repeat=` accepted (keeps a typo from allocating gigabytes).
pub const MAX_REPEAT: u64 = 4096;

/// Why a litmus file could not be read, parsed or run.
#[derive(Debug, thiserror::Error)]
pub enum LitmusError {
    /// The file could not be read.
    #[error("{file}: cannot read, because: {source}")]
    Io {
        /// Path.
        file: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line does not follow the syntax.
    #[error("{file}:{line}: expected {expected}, found `{found}`")]
    Syntax {
        /// Path.
        file: String,
        /// 1-based line.
        line: usize,
        /// What the parser wanted.
        expected: String,
        /// The offending text.
        found: String,
    },
    /// The model refused an op (a broken scenario, not a policy verdict).
    #[error("{file}:{line}: the {policy} model refused `{op}`, because: {source}")]
    Model {
        /// Path.
        file: String,
        /// 1-based line of the op.
        line: usize,
        /// Policy that ran it.
        policy: String,
        /// Op name.
        op: &'static str,
        /// Cause.
        source: ModelError,
    },
}

/// One op and the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LitmusOp {
    /// 1-based line.
    pub line: usize,
    /// The model op.
    pub op: Op,
}

/// Where a violation must happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// 0-based op index.
    Step(u64),
    /// The op on this 1-based line (the first op of a `repeat` line).
    Line(usize),
}

/// What one policy is expected to do: clean or a violation, and (clean) its [`Verdict`]
/// against the reference, spelled as the differ and the reports spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No invariant violation.
    Clean,
    /// This invariant is violated at this op.
    Violation {
        /// Invariant.
        invariant: Invariant,
        /// Where.
        at: At,
    },
    /// Clean, and identical to the reference (counters and snapshot).
    Same,
    /// Clean, differs from the reference, and the policy's contract holds.
    WithinContract,
    /// The contract is breached on this counter, field or relation (prefix match).
    Breach {
        /// Counter name, field class (`pte.dirty`) or relation text prefix.
        field: String,
    },
}

/// `# expect POLICY: VERDICT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// 1-based line.
    pub line: usize,
    /// Policy spec as written (`reference`, `lookaround:window=32`, `negative:free-before-flush`).
    pub policy: String,
    /// Verdict.
    pub verdict: Expected,
}

/// Comparison of a counter check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    fn holds(self, l: u64, r: u64) -> bool {
        match self {
            Cmp::Eq => l == r,
            Cmp::Ne => l != r,
            Cmp::Lt => l < r,
            Cmp::Le => l <= r,
            Cmp::Gt => l > r,
            Cmp::Ge => l >= r,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// Right-hand side of a counter check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rhs {
    /// A number.
    Value(u64),
    /// The same counter in the reference run.
    Reference,
}

/// `# check POLICY: COUNTER CMP (N | reference)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterCheck {
    /// 1-based line.
    pub line: usize,
    /// Policy spec as written.
    pub policy: String,
    /// Counter name (`Counters::NAMES`).
    pub counter: String,
    /// Comparison.
    pub cmp: Cmp,
    /// Right-hand side.
    pub rhs: Rhs,
}

/// A parsed litmus file.
#[derive(Clone, Debug)]
pub struct LitmusFile {
    /// Path or name (for messages).
    pub file: String,
    /// Kernel profile (defaults plus `# profile:`).
    pub profile: KernelProfile,
    /// Contract mode (`# mode:`, default lockstep as in `mmreplay replay`).
    pub mode: Mode,
    /// Ops in order.
    pub ops: Vec<LitmusOp>,
    /// Expected verdicts, in file order.
    pub expects: Vec<Expect>,
    /// Counter checks, in file order.
    pub checks: Vec<CounterCheck>,
}

impl LitmusFile {
    /// Every policy the file names, in first-mention order (`reference` first if named).
    pub fn policies(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let named = self
            .expects
            .iter()
            .map(|e| &e.policy)
            .chain(self.checks.iter().map(|c| &c.policy));
        for p in named {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        if let Some(i) = out.iter().position(|p| p == "reference") {
            let r = out.remove(i);
            out.insert(0, r);
        }
        out
    }

    /// The 1-based line of the op at `step`.
    pub fn line_of_step(&self, step: u64) -> Option<usize> {
        usize::try_from(step)
            .ok()
            .and_then(|s| self.ops.get(s))
            .map(|o| o.line)
    }

    fn step_of(&self, at: At) -> Option<u64> {
        match at {
            At::Step(s) => Some(s),
            At::Line(l) => self
                .ops
                .iter()
                .position(|o| o.line == l)
                .and_then(|i| u64::try_from(i).ok()),
        }
    }
}

/// Read and parse a file.
pub fn load(path: &Path) -> Result<LitmusFile, LitmusError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LitmusError::Io {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

struct Ctx<'a> {
    file: &'a str,
    line: usize,
}

impl Ctx<'_> {
    fn err(&self, expected: impl Into<String>, found: impl Into<String>) -> LitmusError {
        LitmusError::Syntax {
            file: self.file.to_string(),
            line: self.line,
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// Parse the text of a litmus file named `file`.
pub fn parse(file: &str, text: &str) -> Result<LitmusFile, LitmusError> {
    let mut out = LitmusFile {
        file: file.to_string(),
        profile: KernelProfile::default(),
        mode: Mode::Lockstep,
        ops: Vec::new(),
        expects: Vec::new(),
        checks: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let cx = Ctx { file, line: i + 1 };
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        if let Some(c) = l.strip_prefix('#') {
            header(&cx, c.trim(), &mut out)?;
            continue;
        }
        op_line(&cx, l, &mut out.ops)?;
    }
    if out.ops.is_empty() {
        return Err(Ctx {
            file,
            line: text.lines().count().max(1),
        }
        .err("at least one op line", "end of file"));
    }
    Ok(out)
}

fn header(cx: &Ctx<'_>, c: &str, out: &mut LitmusFile) -> Result<(), LitmusError> {
    if let Some(rest) = c.strip_prefix("expect ") {
        let (policy, verdict) = rest
            .split_once(": ")
            .ok_or_else(|| cx.err("`expect POLICY: VERDICT`", c))?;
        out.expects.push(Expect {
            line: cx.line,
            policy: policy.trim().to_string(),
            verdict: parse_verdict(cx, verdict.trim())?,
        });
    } else if let Some(rest) = c.strip_prefix("check ") {
        let (policy, body) = rest
            .split_once(": ")
            .ok_or_else(|| cx.err("`check POLICY: COUNTER CMP VALUE`", c))?;
        let w: Vec<&str> = body.split_whitespace().collect();
        let (Some(counter), Some(cmp), Some(rhs), None) = (w.first(), w.get(1), w.get(2), w.get(3))
        else {
            return Err(cx.err("`COUNTER CMP (N|reference)`", body));
        };
        if Counters::default().get(counter).is_none() {
            return Err(cx.err("a counter name (Counters::NAMES)", *counter));
        }
        let cmp = match *cmp {
            "==" => Cmp::Eq,
            "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            o => return Err(cx.err("one of == != < <= > >=", o)),
        };
        let rhs = if *rhs == "reference" {
            Rhs::Reference
        } else {
            Rhs::Value(num(cx, "value", rhs)?)
        };
        out.checks.push(CounterCheck {
            line: cx.line,
            policy: policy.trim().to_string(),
            counter: counter.to_string(),
            cmp,
            rhs,
        });
    } else if let Some(rest) = c.strip_prefix("profile:") {
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=').ok_or_else(|| cx.err("key=value", kv))?;
            let p = &mut out.profile;
            match k {
                "cpus" => {
                    p.nr_cpus = u32::try_from(num(cx, "cpus", v)?)
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| cx.err("cpus in 1..=64", v))?
                }
                "base" => {
                    p.base = match v {
                        "k61" => Base::K61,
                        "knew" => Base::Knew,
                        _ => return Err(cx.err("base=k61 or base=knew", v)),
                    }
                }
                "mm_walk" => p.lru_gen_mm_walk = flag(cx, v)?,
                "mig_ad" => p.mig_ad_supported = flag(cx, v)?,
                "rcu_table_free" => p.rcu_table_free = flag(cx, v)?,
                "cpumask" => {
                    p.cpumask_mode = match v {
                        "trim" => CpumaskMode::TrimByFlush,
                        "clear" => CpumaskMode::ClearOnSwitch,
                        _ => return Err(cx.err("cpumask=trim or cpumask=clear", v)),
                    }
                }
                _ => {
                    return Err(cx.err(
                        "a profile key (cpus, base, mm_walk, mig_ad, rcu_table_free, cpumask)",
                        k,
                    ))
                }
            }
        }
    } else if let Some(rest) = c.strip_prefix("mode:") {
        out.mode = match rest.trim() {
            "lockstep" => Mode::Lockstep,
            "free-running" => Mode::FreeRunning,
            o => return Err(cx.err("mode: lockstep or free-running", o)),
        };
    }
    // Any other comment is prose.
    Ok(())
}

fn flag(cx: &Ctx<'_>, v: &str) -> Result<bool, LitmusError> {
    match v {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(cx.err("0 or 1", v)),
    }
}

fn parse_verdict(cx: &Ctx<'_>, v: &str) -> Result<Expected, LitmusError> {
    let w: Vec<&str> = v.split_whitespace().collect();
    match w.as_slice() {
        ["clean"] => Ok(Expected::Clean),
        // The verdict's own spelling; `within-contract` and `breach` are older aliases.
        [w] if w.parse() == Ok(Verdict::Same) => Ok(Expected::Same),
        ["within-contract"] => Ok(Expected::WithinContract),
        [w] if w.parse() == Ok(Verdict::DivergedWithinContract) => Ok(Expected::WithinContract),
        ["breach", field] => Ok(Expected::Breach {
            field: field.to_string(),
        }),
        [w, field] if w.parse() == Ok(Verdict::ContractBreach) => Ok(Expected::Breach {
            field: field.to_string(),
        }),
        ["violation", inv, kind, n] => {
            let invariant = match *inv {
                "I1" => Invariant::I1,
                "I2" => Invariant::I2,
                "I3" => Invariant::I3,
                "I4" => Invariant::I4,
                "I5" => Invariant::I5,
                "I7" => Invariant::I7,
                o => return Err(cx.err("an invariant I1 I2 I3 I4 I5 I7", o)),
            };
            let n = num(cx, "step or line number", n)?;
            let at = match *kind {
                "step" => At::Step(n),
                "line" => At::Line(
                    usize::try_from(n).map_err(|_| cx.err("a line number", n.to_string()))?,
                ),
                o => return Err(cx.err("`step N` or `line N`", o)),
            };
            Ok(Expected::Violation { invariant, at })
        }
        _ => Err(cx.err(
            "clean | same | diverged_within_contract | contract_breach FIELD | violation IN (step|line) N",
            v,
        )),
    }
}

/// A number: decimal, `0x` hex, or decimal with a `k`/`m`/`g` (binary) suffix.
fn num(cx: &Ctx<'_>, what: &str, s: &str) -> Result<u64, LitmusError> {
    let bad = || {
        cx.err(
            format!("{what}: a number (decimal, 0x hex, or 4k/2m/1g)"),
            s,
        )
    };
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).map_err(|_| bad());
    }
    let (digits, mul) = match s.as_bytes().last() {
        Some(b'k') => (s.get(..s.len() - 1), 1u64 << 10),
        Some(b'm') => (s.get(..s.len() - 1), 1 << 20),
        Some(b'g') => (s.get(..s.len() - 1), 1 << 30),
        _ => (Some(s), 1),
    };
    digits
        .and_then(|d| d.parse::<u64>().ok())
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(bad)
}

/// The `key=value` words and bare flags of an op line, with every key used exactly once.
struct Args<'a, 'c> {
    cx: &'a Ctx<'c>,
    op: &'a str,
    kv: BTreeMap<&'a str, &'a str>,
    flags: Vec<&'a str>,
}

impl<'a, 'c> Args<'a, 'c> {
    fn new(cx: &'a Ctx<'c>, op: &'a str, words: &[&'a str]) -> Result<Self, LitmusError> {
        let mut kv = BTreeMap::new();
        let mut flags = Vec::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    if kv.insert(k, v).is_some() {
                        return Err(cx.err(format!("`{k}=` at most once"), *w));
                    }
                }
                None => flags.push(*w),
            }
        }
        Ok(Args { cx, op, kv, flags })
    }
    fn opt(&mut self, k: &str) -> Option<&'a str> {
        self.kv.remove(k)
    }
    fn req(&mut self, k: &str) -> Result<&'a str, LitmusError> {
        self.kv.remove(k).ok_or_else(|| {
            self.cx
                .err(format!("`{k}=` on a `{}` line", self.op), self.op)
        })
    }
    fn n(&mut self, k: &str) -> Result<u64, LitmusError> {
        let v = self.req(k)?;
        num(self.cx, k, v)
    }
    fn n32(&mut self, k: &str) -> Result<u32, LitmusError> {
        let v = self.req(k)?;
        u32::try_from(num(self.cx, k, v)?).map_err(|_| self.cx.err(format!("{k}: a u32"), v))
    }
    fn mm(&mut self, k: &str) -> Result<MmId, LitmusError> {
        self.n32(k).map(MmId)
    }
    fn flag(&mut self, f: &str) -> bool {
        match self.flags.iter().position(|x| *x == f) {
            Some(i) => {
                self.flags.remove(i);
                true
            }
            None => false,
        }
    }
    fn kind(&mut self) -> Result<AccessKind, LitmusError> {
        match self.req("kind")? {
            "read" => Ok(AccessKind::Read),
            "write" => Ok(AccessKind::Write),
            "exec" => Ok(AccessKind::Exec),
            o => Err(self.cx.err("kind=read|write|exec", o)),
        }
    }
    fn prot(&mut self) -> Result<u32, LitmusError> {
        let v = self.req("prot")?;
        if v == "none" {
            return Ok(0);
        }
        // Bits without a letter (PROT_GROWSDOWN, ...) as written by `format_op`.
        if v.starts_with("0x") {
            return u32::try_from(num(self.cx, "prot", v)?)
                .map_err(|_| self.cx.err("prot: a u32", v));
        }
        let mut p = 0;
        for c in v.chars() {
            p |= match c {
                'r' => prot::READ,
                'w' => prot::WRITE,
                'x' => prot::EXEC,
                _ => return Err(self.cx.err("prot=none or letters of rwx", v)),
            };
        }
        Ok(p)
    }
    /// Every word must have been used.
    fn done(self) -> Result<(), LitmusError> {
        if let Some((k, v)) = self.kv.iter().next() {
            return Err(self.cx.err(
                format!("no `{k}=` on a `{}` line", self.op),
                format!("{k}={v}"),
            ));
        }
        if let Some(f) = self.flags.first() {
            return Err(self
                .cx
                .err(format!("no bare word `{f}` on a `{}` line", self.op), *f));
        }
        Ok(())
    }
}

fn op_line(cx: &Ctx<'_>, l: &str, ops: &mut Vec<LitmusOp>) -> Result<(), LitmusError> {
    let words: Vec<&str> = l.split_whitespace().collect();
    let Some((name, rest)) = words.split_first() else {
        return Ok(());
    };
    let mut a = Args::new(cx, name, rest)?;
    let mut repeat = (1u64, 0u64);
    let op = match *name {
        "exec" => Op::Exec {
            cpu: a.n32("cpu")?,
            old: match a.opt("old") {
                Some(v) => Some(MmId(
                    u32::try_from(num(cx, "old", v)?).map_err(|_| cx.err("old: a u32", v))?,
                )),
                None => None,
            },
            new: a.mm("mm")?,
        },
        "exit" => Op::Exit {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
        },
        "fork" => Op::Fork {
            cpu: a.n32("cpu")?,
            parent: a.mm("parent")?,
            child: a.mm("child")?,
        },
        "mmap" => {
            let cpu = a.n32("cpu")?;
            let mm = a.mm("mm")?;
            let addr = a.n("addr")?;
            let len = a.n("len")?;
            let prot = a.prot()?;
            let fl = a.req("flags")?;
            let mut flags = 0;
            for f in fl.split('|') {
                flags |= match f {
                    "shared" => map::SHARED,
                    "private" => map::PRIVATE,
                    "anonymous" => map::ANONYMOUS,
                    "fixed" => map::FIXED,
                    "locked" => map::LOCKED,
                    "hugetlb" => map::HUGETLB,
                    // Bits without a name (MAP_NORESERVE, ...) as written by `format_op`.
                    o if o.starts_with("0x") => u32::try_from(num(cx, "flags", o)?)
                        .map_err(|_| cx.err("flags: a u32", o))?,
                    o => {
                        return Err(cx.err(
                            "flags of shared|private|anonymous|fixed|locked|hugetlb|0xBITS",
                            o,
                        ))
                    }
                };
            }
            let file = match a.opt("file") {
                None => None,
                Some(id) => {
                    let kind = match a.req("kind")? {
                        "regular" => FileKind::Regular,
                        "shmem" => FileKind::Shmem,
                        "hugetlbfs" => FileKind::Hugetlbfs,
                        o => return Err(cx.err("kind=regular|shmem|hugetlbfs", o)),
                    };
                    Some(FileRef {
                        id: FileId(num(cx, "file", id)?),
                        kind,
                    })
                }
            };
            let pgoff = match a.opt("pgoff") {
                Some(v) => num(cx, "pgoff", v)?,
                None => 0,
            };
            Op::Mmap {
                cpu,
                mm,
                addr,
                len,
                prot,
                flags,
                file,
                pgoff,
            }
        }
        "munmap" => Op::Munmap {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            addr: a.n("addr")?,
            len: a.n("len")?,
        },
        "mprotect" => Op::Mprotect {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            addr: a.n("addr")?,
            len: a.n("len")?,
            prot: a.prot()?,
        },
        "mremap" => Op::Mremap {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            old_addr: a.n("old_addr")?,
            old_len: a.n("old_len")?,
            new_addr: a.n("new_addr")?,
            new_len: a.n("new_len")?,
        },
        "brk" => Op::Brk {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            brk: a.n("brk")?,
        },
        "madvise" => {
            let (cpu, mm, addr, len) = (a.n32("cpu")?, a.mm("mm")?, a.n("addr")?, a.n("len")?);
            let v = a.req("advice")?;
            let advice = match v {
                "dontneed" => madv::DONTNEED,
                "free" => madv::FREE,
                "dontfork" => madv::DONTFORK,
                "dofork" => madv::DOFORK,
                "wipeonfork" => madv::WIPEONFORK,
                "cold" => madv::COLD,
                "pageout" => madv::PAGEOUT,
                o => u32::try_from(num(cx, "advice", o)?)
                    .map_err(|_| cx.err("advice: a name or a u32", o))?,
            };
            Op::Madvise {
                cpu,
                mm,
                addr,
                len,
                advice,
            }
        }
        "fault" | "access" => {
            let (cpu, mm, va, kind) = (a.n32("cpu")?, a.mm("mm")?, a.n("va")?, a.kind()?);
            if let Some(r) = a.opt("repeat") {
                let n = num(cx, "repeat", r)?;
                if n == 0 || n > MAX_REPEAT {
                    return Err(cx.err(format!("repeat in 1..={MAX_REPEAT}"), r));
                }
                repeat = (n, a.n("stride")?);
            }
            if *name == "fault" {
                Op::Fault { cpu, mm, va, kind }
            } else {
                Op::Access { cpu, mm, va, kind }
            }
        }
        "switch" => {
            let cpu = a.n32("cpu")?;
            let next = match a.req("mm")? {
                "none" => None,
                v => Some(MmId(
                    u32::try_from(num(cx, "mm", v)?).map_err(|_| cx.err("mm: a u32", v))?,
                )),
            };
            Op::Switch { cpu, next }
        }
        "migrate" => {
            let cpu = a.n32("cpu")?;
            let target = match a.opt("pfn") {
                Some(p) => MigrateTarget::Pfn(num(cx, "pfn", p)?),
                None => MigrateTarget::Va {
                    mm: a.mm("mm")?,
                    va: a.n("va")?,
                },
            };
            Op::Migrate { cpu, target }
        }
        "thp_collapse" => Op::ThpCollapse {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            collapsed: match a.req("collapsed")? {
                "1" | "yes" => true,
                "0" | "no" => false,
                other => return Err(cx.err("collapsed=yes|no", other)),
            },
        },
        "clear_soft_dirty" => Op::ClearSoftDirty {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
        },
        "migrate_batch" => Op::MigrateBatch {
            cpu: a.n32("cpu")?,
            step: match a.req("step")? {
                "start" => MigrateBatchStep::Start,
                "foreign_unmap" => MigrateBatchStep::ForeignUnmap,
                "flush" => MigrateBatchStep::Flush,
                other => return Err(cx.err("step=start|foreign_unmap|flush", other)),
            },
        },
        "reclaim" => match a.opt("memcg") {
            Some(m) => Op::ReclaimMemcg {
                cpu: a.n32("cpu")?,
                nr_to_reclaim: a.n32("nr")?,
                memcg: u32::try_from(num(cx, "memcg", m)?).map_err(|_| cx.err("memcg=<u32>", m))?,
            },
            None => Op::Reclaim {
                cpu: a.n32("cpu")?,
                nr_to_reclaim: a.n32("nr")?,
            },
        },
        "reclaim_scan" => Op::ReclaimScan {
            cpu: a.n32("cpu")?,
            nr_scanned: a.n32("nr")?,
            memcg: a.n32("memcg")?,
            file: match a.opt("lru") {
                None => None,
                Some("file") => Some(true),
                Some("anon") => Some(false),
                Some(other) => return Err(cx.err("lru=file|anon", other)),
            },
            nr_reclaimed: match a.opt("reclaimed") {
                None => 0,
                Some(r) => u32::try_from(num(cx, "reclaimed", r)?)
                    .map_err(|_| cx.err("reclaimed=<u32>", r))?,
            },
        },
        "clock" => Op::Clock {
            now_ns: a.n("now")?,
        },
        "memcg" => Op::SetMemcg {
            mm: a.mm("mm")?,
            memcg: a.n32("memcg")?,
        },
        "pagecache_add" => Op::PageCacheAdd {
            mm: a.mm("mm")?,
            va: a.n("va")?,
            index: a.n("index")?,
        },
        "pin" => Op::Pin {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            va: a.n("va")?,
            hold: HoldId(a.n("hold")?),
            write: a.flag("write"),
        },
        "unpin" => Op::Unpin {
            hold: HoldId(a.n("hold")?),
        },
        "getref" => Op::GetRef {
            cpu: a.n32("cpu")?,
            mm: a.mm("mm")?,
            va: a.n("va")?,
            hold: HoldId(a.n("hold")?),
        },
        "putref" => Op::PutRef {
            hold: HoldId(a.n("hold")?),
            write: a.flag("write"),
        },
        o => {
            return Err(cx.err(
                "an op (exec exit fork mmap munmap mprotect mremap brk madvise fault access \
                 switch migrate reclaim memcg clock pin unpin getref putref) or a `#` line",
                o,
            ))
        }
    };
    a.done()?;
    let (n, stride) = repeat;
    for i in 0..n {
        let mut op = op.clone();
        if let Op::Access { va, .. } | Op::Fault { va, .. } = &mut op {
            *va = i
                .checked_mul(stride)
                .and_then(|d| va.checked_add(d))
                .ok_or_else(|| cx.err("repeat*stride within the address space", l))?;
        }
        ops.push(LitmusOp { line: cx.line, op });
    }
    Ok(())
}

/// The op line that [`parse`] reads back as `op` (the writer of `mmreplay minimize`).
pub fn format_op(op: &Op) -> String {
    let kind = |k: &AccessKind| match k {
        AccessKind::Read => "read",
        AccessKind::Write => "write",
        AccessKind::Exec => "exec",
    };
    let prot_s = |p: u32| {
        if p == 0 {
            return "none".to_string();
        }
        let known = prot::READ | prot::WRITE | prot::EXEC;
        if p & !known != 0 {
            return format!("{p:#x}");
        }
        let mut s = String::new();
        for (bit, c) in [(prot::READ, 'r'), (prot::WRITE, 'w'), (prot::EXEC, 'x')] {
            if p & bit != 0 {
                s.push(c);
            }
        }
        s
    };
    let flags_s = |f: u32| {
        let mut parts: Vec<String> = Vec::new();
        let mut rest = f;
        for (bit, name) in [
            (map::SHARED, "shared"),
            (map::PRIVATE, "private"),
            (map::ANONYMOUS, "anonymous"),
            (map::FIXED, "fixed"),
            (map::LOCKED, "locked"),
            (map::HUGETLB, "hugetlb"),
        ] {
            // MAP_SHARED_VALIDATE (3) has both low bits: write it as a number.
            if rest & bit == bit && !(bit <= map::PRIVATE && f & 3 == 3) {
                parts.push(name.to_string());
                rest &= !bit;
            }
        }
        if rest != 0 || parts.is_empty() {
            parts.push(format!("{rest:#x}"));
        }
        parts.join("|")
    };
    let advice_s = |a: u32| match a {
        madv::DONTNEED => "dontneed".to_string(),
        madv::FREE => "free".to_string(),
        madv::DONTFORK => "dontfork".to_string(),
        madv::DOFORK => "dofork".to_string(),
        madv::WIPEONFORK => "wipeonfork".to_string(),
        madv::COLD => "cold".to_string(),
        madv::PAGEOUT => "pageout".to_string(),
        o => o.to_string(),
    };
    match op {
        Op::Fault {
            cpu,
            mm,
            va,
            kind: k,
        } => {
            format!("fault cpu={cpu} mm={} va={va:#x} kind={}", mm.0, kind(k))
        }
        Op::Access {
            cpu,
            mm,
            va,
            kind: k,
        } => {
            format!("access cpu={cpu} mm={} va={va:#x} kind={}", mm.0, kind(k))
        }
        Op::Fork { cpu, parent, child } => {
            format!("fork cpu={cpu} parent={} child={}", parent.0, child.0)
        }
        Op::Exec { cpu, old, new } => match old {
            Some(o) => format!("exec cpu={cpu} old={} mm={}", o.0, new.0),
            None => format!("exec cpu={cpu} mm={}", new.0),
        },
        Op::Exit { cpu, mm } => format!("exit cpu={cpu} mm={}", mm.0),
        Op::Mmap {
            cpu,
            mm,
            addr,
            len,
            prot: p,
            flags,
            file,
            pgoff,
        } => {
            let mut s = format!(
                "mmap cpu={cpu} mm={} addr={addr:#x} len={len:#x} prot={} flags={}",
                mm.0,
                prot_s(*p),
                flags_s(*flags)
            );
            if let Some(f) = file {
                let k = match f.kind {
                    FileKind::Regular => "regular",
                    FileKind::Shmem => "shmem",
                    FileKind::Hugetlbfs => "hugetlbfs",
                };
                s.push_str(&format!(" file={} kind={k}", f.id.0));
            }
            if *pgoff != 0 {
                s.push_str(&format!(" pgoff={pgoff:#x}"));
            }
            s
        }
        Op::Munmap { cpu, mm, addr, len } => {
            format!("munmap cpu={cpu} mm={} addr={addr:#x} len={len:#x}", mm.0)
        }
        Op::Mremap {
            cpu,
            mm,
            old_addr,
            old_len,
            new_addr,
            new_len,
        } => format!(
            "mremap cpu={cpu} mm={} old_addr={old_addr:#x} old_len={old_len:#x} \
             new_addr={new_addr:#x} new_len={new_len:#x}",
            mm.0
        ),
        Op::Brk { cpu, mm, brk } => format!("brk cpu={cpu} mm={} brk={brk:#x}", mm.0),
        Op::Mprotect {
            cpu,
            mm,
            addr,
            len,
            prot: p,
        } => format!(
            "mprotect cpu={cpu} mm={} addr={addr:#x} len={len:#x} prot={}",
            mm.0,
            prot_s(*p)
        ),
        Op::Madvise {
            cpu,
            mm,
            addr,
            len,
            advice,
        } => format!(
            "madvise cpu={cpu} mm={} addr={addr:#x} len={len:#x} advice={}",
            mm.0,
            advice_s(*advice)
        ),
        Op::Switch { cpu, next } => match next {
            Some(m) => format!("switch cpu={cpu} mm={}", m.0),
            None => format!("switch cpu={cpu} mm=none"),
        },
        Op::Migrate { cpu, target } => match target {
            MigrateTarget::Va { mm, va } => format!("migrate cpu={cpu} mm={} va={va:#x}", mm.0),
            MigrateTarget::Pfn(p) => format!("migrate cpu={cpu} pfn={p}"),
        },
        Op::ThpCollapse { cpu, mm, collapsed } => format!(
            "thp_collapse cpu={cpu} mm={} collapsed={}",
            mm.0,
            if *collapsed { "yes" } else { "no" }
        ),
        Op::ClearSoftDirty { cpu, mm } => format!("clear_soft_dirty cpu={cpu} mm={}", mm.0),
        Op::PageCacheAdd { mm, va, index } => {
            format!("pagecache_add mm={} va={va:#x} index={index}", mm.0)
        }
        Op::MigrateBatch { cpu, step } => format!(
            "migrate_batch cpu={cpu} step={}",
            match step {
                MigrateBatchStep::Start => "start",
                MigrateBatchStep::ForeignUnmap => "foreign_unmap",
                MigrateBatchStep::Flush => "flush",
            }
        ),
        Op::Reclaim { cpu, nr_to_reclaim } => format!("reclaim cpu={cpu} nr={nr_to_reclaim}"),
        Op::ReclaimMemcg {
            cpu,
            nr_to_reclaim,
            memcg,
        } => format!("reclaim cpu={cpu} nr={nr_to_reclaim} memcg={memcg}"),
        Op::ReclaimScan {
            cpu,
            nr_scanned,
            memcg,
            file,
            nr_reclaimed,
        } => {
            let lru = match file {
                Some(true) => " lru=file",
                Some(false) => " lru=anon",
                None => "",
            };
            let freed = if *nr_reclaimed > 0 {
                format!(" reclaimed={nr_reclaimed}")
            } else {
                String::new()
            };
            format!("reclaim_scan cpu={cpu} nr={nr_scanned} memcg={memcg}{lru}{freed}")
        }
        Op::SetMemcg { mm, memcg } => format!("memcg mm={} memcg={memcg}", mm.0),
        Op::Pin {
            cpu,
            mm,
            va,
            write,
            hold,
        } => format!(
            "pin cpu={cpu} mm={} va={va:#x} hold={}{}",
            mm.0,
            hold.0,
            if *write { " write" } else { "" }
        ),
        Op::Unpin { hold } => format!("unpin hold={}", hold.0),
        Op::GetRef { cpu, mm, va, hold } => {
            format!("getref cpu={cpu} mm={} va={va:#x} hold={}", mm.0, hold.0)
        }
        Op::PutRef { hold, write } => format!(
            "putref hold={}{}",
            hold.0,
            if *write { " write" } else { "" }
        ),
        Op::Clock { now_ns } => format!("clock now={now_ns}"),
    }
}

/// The `# profile:` line that [`parse`] reads back as `p` (keys the parser knows).
pub fn format_profile(p: &KernelProfile) -> String {
    let b = |x: bool| u8::from(x);
    format!(
        "# profile: cpus={} base={} mm_walk={} mig_ad={} rcu_table_free={} cpumask={}",
        p.nr_cpus,
        match p.base {
            Base::K61 => "k61",
            Base::Knew => "knew",
        },
        b(p.lru_gen_mm_walk),
        b(p.mig_ad_supported),
        b(p.rcu_table_free),
        match p.cpumask_mode {
            CpumaskMode::TrimByFlush => "trim",
            CpumaskMode::ClearOnSwitch => "clear",
        }
    )
}

/// An engine for a policy spec and the contract it is judged by.
pub type BuiltPolicy = (
    Box<dyn Engine + Send>,
    Option<mmreplay_candidates::contract::Contract>,
);

/// Why a policy spec could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyBuildError {
    /// Not a registry spec.
    #[error("{0}")]
    Unknown(String),
    /// A negative control in a build without the `negative-controls` feature.
    #[error("`{0}` is a test-only negative control (this build has no `negative-controls`)")]
    NegativeUnavailable(String),
}

/// An engine and its contract for `spec` under `profile`/`mode`: a registry spec, or (builds
/// with the `negative-controls` feature only) `negative:NAME` with the contract of the
/// candidate that control breaks, as `tests/tests/litmus.rs` judges them.
pub fn build_policy(
    spec: &str,
    profile: &KernelProfile,
    mode: Mode,
) -> Result<BuiltPolicy, PolicyBuildError> {
    use mmreplay_candidates::registry;
    if let Some(name) = spec.strip_prefix("negative:") {
        return build_negative(name, profile, mode);
    }
    let s = registry::parse(spec).map_err(|e| PolicyBuildError::Unknown(e.to_string()))?;
    Ok((
        s.build(profile).into_inner(),
        Some(s.contract(mode, profile)),
    ))
}

#[cfg(feature = "negative-controls")]
fn build_negative(
    name: &str,
    p: &KernelProfile,
    mode: Mode,
) -> Result<BuiltPolicy, PolicyBuildError> {
    use mmreplay_candidates::lookaround::LookAround;
    use mmreplay_candidates::negative::{
        DirtyOnCleanRestore, FreeBeforeFlush, LazyfreeIgnoreRefs, NoSyncUnshare,
        PromoteWithoutClear,
    };
    use mmreplay_candidates::registry;
    use mmreplay_reference::Model;
    let contract_of = |n: &str| {
        registry::parse(n)
            .map(|s| s.contract(mode, p))
            .map_err(|e| PolicyBuildError::Unknown(e.to_string()))
    };
    let m = |x: Box<dyn Engine + Send>| x;
    Ok(match name {
        "free-before-flush" => (m(Box::new(Model::new(p.clone(), FreeBeforeFlush))), None),
        "lazyfree-ignore-refs" => (m(Box::new(Model::new(p.clone(), LazyfreeIgnoreRefs))), None),
        "no-sync-unshare" => (
            m(Box::new(Model::new(p.clone(), NoSyncUnshare))),
            Some(contract_of("batched-unshare")?),
        ),
        "dirty-on-clean-restore" => (
            m(Box::new(Model::new(p.clone(), DirtyOnCleanRestore))),
            Some(contract_of("ad-preserve")?),
        ),
        "promote-without-clear" => (
            m(Box::new(Model::new(
                p.clone(),
                PromoteWithoutClear(LookAround::new(p.base)),
            ))),
            Some(contract_of("lookaround")?),
        ),
        o => {
            return Err(PolicyBuildError::Unknown(format!(
                "unknown negative control `{o}`"
            )))
        }
    })
}

#[cfg(not(feature = "negative-controls"))]
fn build_negative(
    name: &str,
    _p: &KernelProfile,
    _mode: Mode,
) -> Result<BuiltPolicy, PolicyBuildError> {
    Err(PolicyBuildError::NegativeUnavailable(format!(
        "negative:{name}"
    )))
}

/// What checking one file's expectations found.
#[derive(Clone, Debug, Default)]
pub struct FileCheck {
    /// Expectations and counter checks that held.
    pub held: usize,
    /// Those that did not.
    pub failed: Vec<Mismatch>,
    /// Policies whose expectations were not checked, and why (negative controls in a build
    /// without them).
    pub skipped: Vec<(String, String)>,
}

/// Run `file` under every policy it names (the reference first) and check every expectation
/// and counter check written in it. `Err`: a policy spec is unknown or the model refused an op
/// (a broken file, not a failed expectation).
pub fn check_file(file: &LitmusFile) -> Result<FileCheck, String> {
    let mut out = FileCheck::default();
    let mut policies = file.policies();
    if policies.first().map(String::as_str) != Some("reference") {
        policies.insert(0, "reference".to_string());
    }
    let mut results: Vec<(String, PolicyResult, Option<Contract>)> = Vec::new();
    // Lockstep files: the candidates follow the reference's reclaim rounds, as `replay` and
    // `minimize` run them (the reference is first, so its rounds are recorded first).
    let mut scripts: Vec<Option<ReclaimScript>> = Vec::new();
    for (i, spec) in policies.iter().enumerate() {
        match build_policy(spec, &file.profile, file.mode) {
            Ok((mut e, c)) => {
                let r = if file.mode == Mode::Lockstep {
                    run_lockstep(file, spec, &mut *e, &mut scripts, i == 0)
                } else {
                    run(file, spec, &mut *e)
                }
                .map_err(|e| e.to_string())?;
                results.push((spec.clone(), r, c));
            }
            Err(PolicyBuildError::NegativeUnavailable(m)) => out.skipped.push((spec.clone(), m)),
            Err(PolicyBuildError::Unknown(m)) => {
                return Err(format!("{}: policy `{spec}`: {m}", file.file))
            }
        }
    }
    let Some((_, reference, _)) = results.first() else {
        return Err(format!("{}: the reference could not run", file.file));
    };
    let find = |p: &str| results.iter().find(|(n, _, _)| n == p);
    for e in &file.expects {
        if let Some((_, r, c)) = find(&e.policy) {
            match check_expect(file, e, reference, r, c.as_ref()) {
                Ok(()) => out.held += 1,
                Err(m) => out.failed.push(m),
            }
        }
    }
    for c in &file.checks {
        if let Some((_, r, _)) = find(&c.policy) {
            match check_counter(file, c, reference, r) {
                Ok(()) => out.held += 1,
                Err(m) => out.failed.push(m),
            }
        }
    }
    Ok(out)
}

/// What one policy did on a litmus file.
#[derive(Clone, Debug)]
pub struct PolicyResult {
    /// Policy spec as written in the file.
    pub policy: String,
    /// Final counters.
    pub counters: Counters,
    /// Final snapshot (after `finish`).
    pub snapshot: Snapshot,
    /// Violations, including the final full scan.
    pub violations: Vec<Violation>,
}

/// Run every op of `file` through `engine`, then `finish` it. A refused op is an error naming
/// its line: litmus files are meant to be valid for every policy.
pub fn run(
    file: &LitmusFile,
    policy: &str,
    engine: &mut (dyn Engine + Send),
) -> Result<PolicyResult, LitmusError> {
    for o in &file.ops {
        engine.apply(&o.op).map_err(|source| LitmusError::Model {
            file: file.file.clone(),
            line: o.line,
            policy: policy.to_string(),
            op: o.op.name(),
            source,
        })?;
    }
    engine.finish();
    Ok(PolicyResult {
        policy: policy.to_string(),
        counters: engine.counters().clone(),
        snapshot: engine.snapshot(),
        violations: engine.violations().to_vec(),
    })
}

/// [`run`] in lockstep: the leader records every reclaim op's rounds into `scripts`; a
/// follower has them imposed (`Engine::apply_imposed`), op for op.
fn run_lockstep(
    file: &LitmusFile,
    policy: &str,
    engine: &mut (dyn Engine + Send),
    scripts: &mut Vec<Option<ReclaimScript>>,
    lead: bool,
) -> Result<PolicyResult, LitmusError> {
    let mut next = 0usize;
    for o in &file.ops {
        let reclaim = matches!(
            o.op,
            Op::Reclaim { .. } | Op::ReclaimMemcg { .. } | Op::ReclaimScan { .. }
        );
        let r = if !reclaim {
            engine.apply(&o.op)
        } else if lead {
            let (r, s) = engine.apply_recording(&o.op);
            scripts.push(s);
            r
        } else {
            let s = scripts.get(next).cloned().flatten();
            next += 1;
            match s {
                Some(s) => engine.apply_imposed(&o.op, &s).0,
                None => engine.apply(&o.op),
            }
        };
        r.map_err(|source| LitmusError::Model {
            file: file.file.clone(),
            line: o.line,
            policy: policy.to_string(),
            op: o.op.name(),
            source,
        })?;
    }
    engine.finish();
    Ok(PolicyResult {
        policy: policy.to_string(),
        counters: engine.counters().clone(),
        snapshot: engine.snapshot(),
        violations: engine.violations().to_vec(),
    })
}

/// An expectation that did not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {policy}: expected {expected}, got {got}")]
pub struct Mismatch {
    /// Path.
    pub file: String,
    /// Line of the expectation.
    pub line: usize,
    /// Policy.
    pub policy: String,
    /// The expectation.
    pub expected: String,
    /// What happened.
    pub got: String,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Clean => write!(f, "clean"),
            Expected::Same => write!(f, "{}", Verdict::Same),
            Expected::WithinContract => write!(f, "{}", Verdict::DivergedWithinContract),
            Expected::Breach { field } => write!(f, "{} {field}", Verdict::ContractBreach),
            Expected::Violation {
                invariant,
                at: At::Step(s),
            } => write!(f, "violation {} step {s}", invariant.name()),
            Expected::Violation {
                invariant,
                at: At::Line(l),
            } => write!(f, "violation {} line {l}", invariant.name()),
        }
    }
}

fn describe_violations(file: &LitmusFile, v: &[Violation]) -> String {
    if v.is_empty() {
        return "no violation".to_string();
    }
    let shown: Vec<String> = v
        .iter()
        .take(5)
        .map(|x| {
            let line = file
                .line_of_step(x.step)
                .map_or_else(|| "after the last op".to_string(), |l| format!("line {l}"));
            format!(
                "{} at step {} ({line}): {}",
                x.invariant.name(),
                x.step,
                x.detail
            )
        })
        .collect();
    format!("{} violation(s): {}", v.len(), shown.join("; "))
}

fn describe_breaches(b: &[Breach]) -> String {
    if b.is_empty() {
        return "no breach".to_string();
    }
    let shown: Vec<String> = b.iter().take(5).map(|x| x.to_string()).collect();
    format!("{} breach(es): {}", b.len(), shown.join("; "))
}

/// Check one expectation. `contract` is the policy's contract with the reference (needed for
/// `within-contract` and `breach`).
pub fn check_expect(
    file: &LitmusFile,
    e: &Expect,
    reference: &PolicyResult,
    this: &PolicyResult,
    contract: Option<&Contract>,
) -> Result<(), Mismatch> {
    let fail = |got: String| Mismatch {
        file: file.file.clone(),
        line: e.line,
        policy: e.policy.clone(),
        expected: e.verdict.to_string(),
        got,
    };
    let breaches = || -> Result<Vec<Breach>, Mismatch> {
        let c = contract.ok_or_else(|| fail("no contract for this policy".to_string()))?;
        Ok(c.check(
            Observed {
                counters: &reference.counters,
                snapshot: &reference.snapshot,
            },
            Observed {
                counters: &this.counters,
                snapshot: &this.snapshot,
            },
        ))
    };
    let clean = || {
        if this.violations.is_empty() {
            Ok(())
        } else {
            Err(fail(describe_violations(file, &this.violations)))
        }
    };
    let identical = this.counters == reference.counters
        && this.snapshot.to_text() == reference.snapshot.to_text();
    match &e.verdict {
        Expected::Clean => clean(),
        Expected::Violation { invariant, at } => {
            let step = file
                .step_of(*at)
                .ok_or_else(|| fail(format!("no op at {at:?} in the file")))?;
            if this
                .violations
                .iter()
                .any(|v| v.invariant == *invariant && v.step == step)
            {
                Ok(())
            } else {
                Err(fail(describe_violations(file, &this.violations)))
            }
        }
        Expected::Same => {
            clean()?;
            if identical {
                Ok(())
            } else {
                Err(fail("a run that differs from the reference".to_string()))
            }
        }
        Expected::WithinContract => {
            clean()?;
            let b = breaches()?;
            if !b.is_empty() {
                return Err(fail(describe_breaches(&b)));
            }
            if identical {
                return Err(fail(
                    "a run identical to the reference (the scenario does not exercise the policy)"
                        .to_string(),
                ));
            }
            Ok(())
        }
        Expected::Breach { field } => {
            let b = breaches()?;
            let hit = b.iter().any(|x| match x.subject {
                Subject::Relation => x.field.starts_with(field.as_str()),
                _ => x.field == *field,
            });
            if hit {
                Ok(())
            } else {
                Err(fail(describe_breaches(&b)))
            }
        }
    }
}

/// Check one counter expectation.
pub fn check_counter(
    file: &LitmusFile,
    c: &CounterCheck,
    reference: &PolicyResult,
    this: &PolicyResult,
) -> Result<(), Mismatch> {
    let fail = |got: String| Mismatch {
        file: file.file.clone(),
        line: c.line,
        policy: c.policy.clone(),
        expected: format!(
            "{} {} {}",
            c.counter,
            c.cmp.symbol(),
            match &c.rhs {
                Rhs::Value(v) => v.to_string(),
                Rhs::Reference => "reference".to_string(),
            }
        ),
        got,
    };
    let l = this
        .counters
        .get(&c.counter)
        .ok_or_else(|| fail("an unknown counter".to_string()))?;
    let r = match c.rhs {
        Rhs::Value(v) => v,
        Rhs::Reference => reference
            .counters
            .get(&c.counter)
            .ok_or_else(|| fail("an unknown counter".to_string()))?,
    };
    if c.cmp.holds(l, r) {
        Ok(())
    } else {
        Err(fail(format!("{} = {l} (right side {r})", c.counter)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("t.litmus", text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn parses_ops_and_headers() {
        let f = parse(
            "t.litmus",
            "# profile: cpus=2 base=k61\n# mode: free-running\n\
             # expect reference: clean\n# expect negative:x: violation I1 line 6\n\
             exec cpu=0 mm=1\n\
             mmap cpu=0 mm=1 addr=0x1000 len=8k prot=rw flags=shared file=3 kind=regular\n\
             access cpu=1 mm=1 va=0x1000 kind=write repeat=2 stride=0x1000\n\
             # check lookaround: rmap_walks < reference\n\
             pin cpu=0 mm=1 va=0x1000 hold=1 write\nswitch cpu=1 mm=none\n",
        );
        let Ok(f) = f else {
            panic!("{f:?}");
        };
        assert_eq!(f.profile.nr_cpus, 2);
        assert_eq!(f.profile.base, Base::K61);
        assert_eq!(f.mode, Mode::FreeRunning);
        assert_eq!(f.ops.len(), 6);
        assert_eq!(f.ops.get(3).map(|o| o.line), Some(7));
        assert!(matches!(
            f.ops.get(3).map(|o| &o.op),
            Some(Op::Access { va: 0x2000, .. })
        ));
        assert!(matches!(
            f.ops.get(4).map(|o| &o.op),
            Some(Op::Pin { write: true, .. })
        ));
        assert_eq!(f.step_of(At::Line(6)), Some(1));
        assert_eq!(f.policies(), vec!["reference", "negative:x", "lookaround"]);
        assert_eq!(f.checks.len(), 1);
    }

    #[test]
    fn memcg_ops_parse() {
        let f = parse(
            "t.litmus",
            "exec cpu=0 mm=1\nmemcg mm=1 memcg=2\nreclaim cpu=1 nr=8 memcg=2\nreclaim cpu=1 nr=3\n",
        );
        let Ok(f) = f else {
            panic!("{f:?}");
        };
        let ops: Vec<&Op> = f.ops.iter().map(|o| &o.op).collect();
        assert_eq!(
            ops.get(1..),
            Some(
                &[
                    &Op::SetMemcg {
                        mm: MmId(1),
                        memcg: 2
                    },
                    &Op::ReclaimMemcg {
                        cpu: 1,
                        nr_to_reclaim: 8,
                        memcg: 2
                    },
                    &Op::Reclaim {
                        cpu: 1,
                        nr_to_reclaim: 3
                    },
                ][..]
            )
        );
        assert!(err("exec cpu=0 mm=1\nreclaim cpu=0 nr=1 memcg=x\n").contains("t.litmus:2"));
    }

    #[test]
    fn errors_name_file_line_and_expectation() {
        let e = err("exec cpu=0 mm=1\nfrob cpu=0\n");
        assert!(e.starts_with("t.litmus:2: expected an op"), "{e}");
        let e = err("exec cpu=0\n");
        assert!(e.contains("t.litmus:1:") && e.contains("`mm=`"), "{e}");
        let e = err("exec cpu=0 mm=1 color=red\n");
        assert!(e.contains("no `color=`"), "{e}");
        let e = err("exec cpu=0 mm=1\naccess cpu=0 mm=1 va=0xzz kind=read\n");
        assert!(e.contains("t.litmus:2:") && e.contains("0xzz"), "{e}");
        let e = err("# expect reference: violation I9 step 1\nexec cpu=0 mm=1\n");
        assert!(e.contains("I9"), "{e}");
        let e = err("# check reference: no_such_counter < 3\nexec cpu=0 mm=1\n");
        assert!(e.contains("counter"), "{e}");
        let e = err("# just prose\n");
        assert!(e.contains("at least one op"), "{e}");
        let e = err("access cpu=0 mm=1 va=0xffffffffffff0000 kind=read repeat=4096 stride=1g\n");
        assert!(e.contains("repeat*stride"), "{e}");
        let e = err("mmap cpu=0 mm=1 addr=0 len=99999999999999999999g prot=rw flags=private\n");
        assert!(e.contains("len"), "{e}");
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "",
            "=",
            "mmap",
            "mmap ====",
            "# expect",
            "# expect x:",
            "# check a: b",
            "k=v",
            "access cpu=0 mm=1 va=1 kind=read repeat=0 stride=0",
            "switch cpu=0 mm=",
            "\u{0}\u{ffff}",
            "# profile: cpus=0",
            "# mode: sideways",
            "migrate cpu=0",
        ] {
            let _ = parse("g", s);
        }
    }

    /// Every op the writer emits parses back to itself (minimize's output is a litmus file).
    #[test]
    fn format_op_round_trips() {
        use mmreplay_reference::op::madv;
        let ops = vec![
            Op::Exec {
                cpu: 1,
                old: Some(MmId(3)),
                new: MmId(4),
            },
            Op::Exec {
                cpu: 0,
                old: None,
                new: MmId(1),
            },
            Op::Mmap {
                cpu: 0,
                mm: MmId(1),
                addr: 0x7f00_0000_0000,
                len: 0x3000,
                prot: prot::READ | 0x0100_0000,
                flags: map::SHARED_VALIDATE | 0x4000,
                file: Some(FileRef {
                    id: FileId(9),
                    kind: FileKind::Hugetlbfs,
                }),
                pgoff: 7,
            },
            Op::Mmap {
                cpu: 0,
                mm: MmId(1),
                addr: 0x1000,
                len: 0x1000,
                prot: 0,
                flags: map::PRIVATE | map::ANONYMOUS,
                file: None,
                pgoff: 0,
            },
            Op::Madvise {
                cpu: 0,
                mm: MmId(1),
                addr: 0x1000,
                len: 0x1000,
                advice: 99,
            },
            Op::Madvise {
                cpu: 0,
                mm: MmId(1),
                addr: 0x1000,
                len: 0x1000,
                advice: madv::FREE,
            },
            Op::Migrate {
                cpu: 0,
                target: MigrateTarget::Pfn(12),
            },
            Op::Switch { cpu: 1, next: None },
            Op::MigrateBatch {
                cpu: 1,
                step: MigrateBatchStep::ForeignUnmap,
            },
            Op::ThpCollapse {
                cpu: 0,
                mm: MmId(2),
                collapsed: true,
            },
            Op::ClearSoftDirty {
                cpu: 1,
                mm: MmId(2),
            },
            Op::PageCacheAdd {
                mm: MmId(2),
                va: 0x7f00_0000_3000,
                index: 5,
            },
            Op::Clock {
                now_ns: 123_456_789,
            },
            Op::ReclaimMemcg {
                cpu: 1,
                nr_to_reclaim: 32,
                memcg: 5,
            },
            Op::ReclaimScan {
                cpu: 0,
                nr_scanned: 32,
                memcg: 5,
                file: None,
                nr_reclaimed: 0,
            },
            Op::ReclaimScan {
                cpu: 1,
                nr_scanned: 4,
                memcg: 5,
                file: Some(true),
                nr_reclaimed: 3,
            },
            Op::ReclaimScan {
                cpu: 1,
                nr_scanned: 9,
                memcg: 5,
                file: Some(false),
                nr_reclaimed: 0,
            },
            Op::PutRef {
                hold: HoldId(2),
                write: true,
            },
            Op::Mremap {
                cpu: 0,
                mm: MmId(1),
                old_addr: 0x1000,
                old_len: 0x1000,
                new_addr: 0x9000,
                new_len: 0x2000,
            },
        ];
        let text: String = ops.iter().map(|o| format_op(o) + "\n").collect();
        let p = KernelProfile {
            nr_cpus: 3,
            cpumask_mode: CpumaskMode::TrimByFlush,
            ..KernelProfile::default()
        };
        let f = parse("rt.litmus", &format!("{}\n{text}", format_profile(&p)));
        let Ok(f) = f else { panic!("{f:?}\n{text}") };
        let back: Vec<Op> = f.ops.into_iter().map(|o| o.op).collect();
        assert_eq!(back, ops, "{text}");
        assert_eq!(f.profile, p);
    }
}
