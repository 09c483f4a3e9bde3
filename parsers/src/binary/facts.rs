//! What a binary capture says about itself beyond its records: the program that wrote it, the
//! CPU count it states, and what the reader could not read (where, how much, why). Carried to
//! `mmreplay stats` (`capture` key) and to `replay` (CPU count). The type is the leaf's
//! ([`crate::source::CaptureFacts`]); this fills it from perf.data. Must never hold records.

use super::perf::PerfInfo;
use crate::source::CaptureFacts;

impl CaptureFacts {
    pub fn from_perf(i: &PerfInfo) -> Self {
        CaptureFacts {
            producer: i
                .producer
                .map_or(if i.pipe { "perf (pipe mode)" } else { "perf" }, |p| {
                    p.name()
                })
                .to_string(),
            producer_version: i.version.clone(),
            nr_cpus: i.nr_cpus,
            damaged_at: i.damage.as_ref().map(|d| d.offset),
            damaged_bytes: i.damage.as_ref().map_or(0, |d| d.bytes),
            damage: i.damage.as_ref().map(|d| d.reason.clone()),
            skipped_records: i.skipped_records.clone(),
            aux_bytes: i.aux_bytes,
            notes: i
                .notes
                .iter()
                .map(|n| format!("byte {}: {}", n.offset, n.msg))
                .collect(),
        }
    }
}
