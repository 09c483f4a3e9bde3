//! `mmreplay-reference`: the executable reference model of Linux memory management.
//!
//! It must never do I/O or know about trace formats.
