//! How a [`Sym`] field of `Event` is (de)serialised (`#[serde(with = "crate::mmr::sym")]` in
//! `record.rs`): as its text, except while this thread writes or reads a `.mmr` chunk, where
//! it is an index into the chunk's string table. The same strings (`sched_switch`'s
//! `prev_state`, `rss_stat`'s member, `tlb_flush` reasons) repeat in most records; an index
//! costs one `Arc` clone to read where the text costs two allocations and a copy.
//!
//! The tables are thread-local and set only by [`Encoding`] / [`Decoding`] guards, which the
//! `.mmr` writer and decoder hold around one chunk's records (a guard clears its table when
//! dropped, on every path). Any other serializer (JSON) sees the text. Must never hand out an
//! index it has not checked against the table.

use std::cell::RefCell;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::record::Sym;

/// A chunk's strings while it is written, in first-use order (deterministic output).
#[derive(Default)]
pub(super) struct Table {
    pub strings: Vec<Sym>,
    index: mmreplay_hash::FxHashMap<Sym, u32>,
}

thread_local! {
    static ENCODE: RefCell<Option<Table>> = const { RefCell::new(None) };
    static DECODE: RefCell<Option<Vec<Sym>>> = const { RefCell::new(None) };
}

/// While alive, this thread's `Sym`s serialise as indices into a fresh table.
pub(super) struct Encoding(());

impl Encoding {
    pub fn start() -> Encoding {
        ENCODE.with(|t| *t.borrow_mut() = Some(Table::default()));
        Encoding(())
    }

    /// Ends the encoding and gives the table the indices point into.
    pub fn finish(self) -> Vec<Sym> {
        ENCODE
            .with(|t| t.borrow_mut().take())
            .map(|t| t.strings)
            .unwrap_or_default()
    }
}

impl Drop for Encoding {
    fn drop(&mut self) {
        ENCODE.with(|t| t.borrow_mut().take());
    }
}

/// While alive, this thread's `Sym`s deserialise from indices into `strings`.
pub(super) struct Decoding(());

impl Decoding {
    pub fn start(strings: Vec<Sym>) -> Decoding {
        DECODE.with(|t| *t.borrow_mut() = Some(strings));
        Decoding(())
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        DECODE.with(|t| t.borrow_mut().take());
    }
}

pub fn serialize<S: Serializer>(s: &Sym, ser: S) -> Result<S::Ok, S::Error> {
    let index = ENCODE.with(|t| {
        t.borrow_mut().as_mut().map(|t| {
            let next = t.strings.len() as u32;
            *t.index.entry(s.clone()).or_insert_with(|| {
                t.strings.push(s.clone());
                next
            })
        })
    });
    match index {
        Some(i) => ser.serialize_u32(i),
        None => ser.serialize_str(s),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sym, D::Error> {
    let active = DECODE.with(|t| t.borrow().is_some());
    if !active {
        return Ok(Sym::from(String::deserialize(d)?));
    }
    let i = u32::deserialize(d)?;
    DECODE.with(|t| match t.borrow().as_ref() {
        Some(strings) => strings.get(i as usize).cloned().ok_or_else(|| {
            D::Error::custom(format!(
                "string {i}, the chunk's string table has {}",
                strings.len()
            ))
        }),
        None => Err(D::Error::custom("no string table")),
    })
}
