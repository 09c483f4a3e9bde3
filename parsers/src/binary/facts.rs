//! What a binary capture says about itself beyond its records: the program that wrote it, the
//! CPU count it states, and what the reader could not read (where, how much, why). Carried to
//! `mmreplay stats` (`capture` key) and to `replay` (CPU count). Must never hold records.

use std::collections::BTreeMap;

use serde::Serialize;

use super::perf::PerfInfo;

/// Facts of one capture (perf.data only for now; trace.dat states its CPUs in its header).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CaptureFacts {
    /// `perf`, `perf (legacy event_types)`, `perf (pipe mode)`, `simpleperf`.
    pub producer: String,
    /// perf's HEADER_VERSION or simpleperf's `simpleperf_version`, when stated.
    pub producer_version: Option<String>,
    /// CPUs online when recorded (perf HEADER_NRCPUS); None when the capture does not say.
    pub nr_cpus: Option<u32>,
    /// Byte offset where the record stream broke; every record before it was read.
    pub damaged_at: Option<u64>,
    /// Bytes from `damaged_at` to the end of the record stream, not read.
    pub damaged_bytes: u64,
    pub damage: Option<String>,
    /// Records stepped over, by kind (`auxtrace`, `unparsable_type_N`, ...).
    pub skipped_records: BTreeMap<String, u64>,
    /// AUX payload bytes stepped over (Intel PT / CoreSight data).
    pub aux_bytes: u64,
    /// Tolerated header oddities, each with its byte offset.
    pub notes: Vec<String>,
}

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
