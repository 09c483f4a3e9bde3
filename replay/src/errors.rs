//! The one error style of every command: `mmreplay CMD: error: FILE[:LINE|@BYTE]: what,
//! because: cause`. Library errors name the file and position in their message and keep the
//! underlying cause in `source()`; this joins the chain so no command drops the cause
//! (`incomplete frame` of a cut zstd stream) that another prints.
//!
//! It must never print anything itself.

/// `what, because: cause, because: deeper cause`, skipping a cause whose text the message
/// already holds (transparent wrappers repeat their source).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !t.is_empty() && !s.contains(&t) {
            s.push_str(", because: ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// [`chain`] of an `anyhow::Error` (the binary's context layers, then the library's causes).
pub fn chain_anyhow(e: &anyhow::Error) -> String {
    let mut s = String::new();
    for c in e.chain() {
        let t = c.to_string();
        if t.is_empty() || s.contains(&t) {
            continue;
        }
        if !s.is_empty() {
            s.push_str(if s.ends_with(':') { " " } else { ", because: " });
        }
        s.push_str(&t);
    }
    s
}

/// The message of every failed command: `mmreplay CMD: error: MESSAGE`.
pub fn line(cmd: &str, message: &str) -> String {
    format!("mmreplay {cmd}: error: {message}")
}
