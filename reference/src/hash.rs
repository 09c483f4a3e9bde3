//! The workspace's fixed hashes (FNV-1a, the Fx `BuildHasher`), from `mmreplay-hash`: one
//! implementation for the model and the parsers.
pub use mmreplay_hash::*;
