//! `mmreplay diff A.snap B.snap`: unified diff of two final-state snapshots written by
//! `replay --snapshot-out` (canonical text, or a `Snapshot` as JSON). Exit 0 when equal, 1 when
//! they differ, 2 when a file cannot be read or is not a snapshot.

use std::path::PathBuf;
use std::process::ExitCode;

use mmreplay_reference::snapshot::Snapshot;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// First snapshot (shown as `---`).
    pub a: PathBuf,
    /// Second snapshot (shown as `+++`).
    pub b: PathBuf,
    /// Lines of context around each change.
    #[arg(long, default_value_t = 3)]
    pub context: usize,
    /// One JSON object: `{"a", "b", "same", "diff"}` (the exit status is the same).
    #[arg(long)]
    pub json: bool,
    /// With `--json`: indented JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
}

/// Canonical text of a snapshot file, or a message naming the file and what was expected.
pub fn load(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not a snapshot: byte {} is not UTF-8 (expected canonical snapshot text or JSON)",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let s: Snapshot = serde_json::from_str(trimmed).map_err(|e| {
            format!(
                "{}: JSON is not a snapshot: {e} (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        return Ok(s.to_text());
    }
    // Canonical text starts with the LRU line (Snapshot::write_text).
    match text.lines().next() {
        Some(l) if l.starts_with("lru nr_gens ") => Ok(text),
        Some(l) => Err(format!(
            "{}: line 1 is {:?}: expected canonical snapshot text starting with \"lru nr_gens\" or a JSON snapshot",
            path.display(),
            l.chars().take(80).collect::<String>()
        )),
        None => Err(format!("{}: empty file: expected a snapshot", path.display())),
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (ta, tb) = match (load(&a.a), load(&a.b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mmreplay diff: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let an = a.a.display().to_string();
    let bn = a.b.display().to_string();
    let same = ta == tb;
    let text = if same {
        String::new()
    } else {
        similar::TextDiff::from_lines(&ta, &tb)
            .unified_diff()
            .context_radius(a.context)
            .header(&an, &bn)
            .to_string()
    };
    if a.json {
        let v = serde_json::json!({ "a": an, "b": bn, "same": same, "diff": text });
        super::json_out::emit("diff", v, a.pretty)?;
    } else {
        print!("{text}");
    }
    // diff(1): 0 same, 1 different, 2 trouble.
    Ok(ExitCode::from(if same { 0 } else { 1 }))
}
