//! Atomic output files, the one implementation every crate that writes uses (`replay`'s
//! reports, snapshots and matrix cells, `record`'s captures and sidecars): write a temporary
//! file in the target's own directory, sync it, then rename it over the target, so a reader (or
//! a re-run after a kill) sees the old file or the whole new one, never a half. It must never
//! leave its temporary file behind on an error.
//!
//! The temporary name is `.NAME.tmp-PID` beside the target: hidden, and marked with the writer's
//! pid so that [`sweep_stale`] can tell what a killed writer left from what a live one is
//! writing. It lives here, in the lowest crate, because the parsers write too (`.mmr`).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why an atomic write failed, with the file it was for.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write, because: {source}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The temporary name of `path` while this process writes it: `.NAME.tmp-PID` beside it.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// A temporary file or directory beside its target, removed on drop unless
/// [`Pending::commit`] renamed it into place. Directories (`record --raw`) and files written
/// piece by piece (a trace.dat) use it directly; whole buffers use [`write_atomic`].
#[derive(Debug)]
pub struct Pending {
    target: PathBuf,
    tmp: PathBuf,
    armed: bool,
}

impl Pending {
    /// Reserves [`tmp_path`] of `target`; nothing is created yet.
    pub fn new(target: &Path) -> Pending {
        Pending {
            target: target.to_path_buf(),
            tmp: tmp_path(target),
            armed: true,
        }
    }

    /// Where to write before the commit.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Creates the temporary file, truncating one a previous run of this pid left.
    pub fn create_file(&self) -> Result<File, WriteError> {
        File::create(&self.tmp).map_err(|source| WriteError {
            path: self.target.clone(),
            source,
        })
    }

    /// Renames the temporary file or directory over the target (the caller has synced it).
    pub fn commit(mut self) -> Result<(), WriteError> {
        std::fs::rename(&self.tmp, &self.target).map_err(|source| WriteError {
            path: self.target.clone(),
            source,
        })?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.armed {
            remove(&self.tmp);
        }
    }
}

fn remove(p: &Path) {
    if p.is_dir() {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

/// Write `bytes` to `path` atomically (temp file [`tmp_path`] beside it, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let pending = Pending::new(path);
    let mut f = pending.create_file()?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| WriteError {
            path: path.to_path_buf(),
            source,
        })?;
    drop(f);
    pending.commit()
}

/// Removes what a writer killed with SIGKILL left beside `target`: `.NAME…tmp-PID…` files and
/// directories (see [`tmp_path`]; a trace.dat's page directory adds a suffix) whose PID no
/// longer runs. Returns what was removed.
pub fn sweep_stale(target: &Path) -> Vec<PathBuf> {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut gone = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return gone;
    };
    let prefix = format!(".{name}");
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = n.strip_prefix(&prefix) else {
            continue;
        };
        let Some(i) = rest.find(".tmp-") else {
            continue;
        };
        let digits: String = rest
            .get(i + 5..)
            .unwrap_or_default()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let p = e.path();
        remove(&p);
        if !p.exists() {
            gone.push(p);
        }
    }
    gone.sort();
    gone
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
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pending_is_removed_unless_committed() {
        let dir = std::env::temp_dir().join(format!("mmreplay-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("cap.raw");
        let p = Pending::new(&target);
        std::fs::create_dir(p.tmp()).unwrap();
        std::fs::write(p.tmp().join("x"), b"x").unwrap();
        let tmp = p.tmp().to_path_buf();
        drop(p);
        assert!(!tmp.exists() && !target.exists());
        let p = Pending::new(&target);
        std::fs::create_dir(p.tmp()).unwrap();
        p.commit().unwrap();
        assert!(target.is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_swept() {
        let dir = std::env::temp_dir().join(format!("mmreplay-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let out = dir.join("cap.trace.dat");
        for n in [
            format!(".cap.trace.dat.tmp-{dead}"),
            format!(".cap.trace.dat.tmp-{dead}.pages"),
            format!(".cap.trace.dat.meta.json.tmp-{dead}"),
            format!(".cap.trace.dat.tmp-{me}"),
            ".cap.trace.dat.tmp-1".to_string(),
            format!(".other.tmp-{dead}"),
            "cap.trace.dat".to_string(),
        ] {
            if n.ends_with(".pages") {
                std::fs::create_dir_all(dir.join(&n).join("x")).unwrap();
            } else {
                std::fs::write(dir.join(&n), "x").unwrap();
            }
        }
        let gone = sweep_stale(&out);
        let names: Vec<String> = gone
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                format!(".cap.trace.dat.meta.json.tmp-{dead}"),
                format!(".cap.trace.dat.tmp-{dead}"),
                format!(".cap.trace.dat.tmp-{dead}.pages"),
            ]
        );
        // Ours, a live pid's (1), another capture's and the capture itself stay; and what
        // this process writes is named so that the sweep recognises it.
        assert_eq!(tmp_path(&out), dir.join(format!(".cap.trace.dat.tmp-{me}")));
        for n in [
            format!(".cap.trace.dat.tmp-{me}"),
            ".cap.trace.dat.tmp-1".to_string(),
            format!(".other.tmp-{dead}"),
            "cap.trace.dat".to_string(),
        ] {
            assert!(dir.join(&n).exists(), "{n} removed");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
