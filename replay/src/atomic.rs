//! Atomic output files: write a temporary file in the target's own directory, sync it, then
//! rename it over the target, so a reader (or a re-run after a kill) sees the old file or the
//! whole new one, never a half. It must never leave its temporary file behind on an error.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why an atomic write failed, with the file it was for.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Write `bytes` to `path` atomically (temp file `NAME.tmp.PID` beside it, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_keeps_old_one_on_error() {
        let dir = std::env::temp_dir().join(format!("mmreplay-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // A target that is a directory cannot be replaced: the error names it, and no
        // temporary file is left behind.
        let d = dir.join("adir");
        std::fs::create_dir_all(&d).unwrap();
        let e = write_atomic(&d, b"x").unwrap_err();
        assert!(e.to_string().contains("adir"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
