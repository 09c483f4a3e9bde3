//! The per-CPU ring-buffer readers of `mmreplay record`: one thread per CPU copies whole pages
//! from `per_cpu/cpuN/trace_pipe_raw` into a file while the workload runs, so the buffer is
//! emptied as it fills instead of overflowing (trace-cmd's recorder does the same).
//!
//! Each reader sleeps in `poll` until its CPU's buffer reaches the instance's `buffer_percent`
//! mark, then reads page by page until the buffer is empty (`EAGAIN`). Reads are one sub-buffer
//! long, so the kernel hands out one whole page per read (`tracing_buffers_read`). Once the
//! recorder has turned tracing off it sets the stop flag; each reader then drains what is left,
//! partial pages included, and returns.
//!
//! What it must never do: hold pages in memory beyond one page (they go to the file), or stop
//! before its buffer is empty once tracing is off.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a reader sleeps in `poll` before it looks at the stop flag again.
const POLL_MS: i32 = 100;
/// After a drain, the least time before the next: bounds the partial pages a reader cuts at
/// low event rates (one per drain) whatever `poll` does.
const MIN_GAP: Duration = Duration::from_millis(10);

/// What one reader copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PumpStats {
    pub bytes: u64,
    pub reads: u64,
    /// Times it woke up and found data.
    pub drains: u64,
}

/// Copies pages from `src` (opened `O_NONBLOCK`) to `dst` until `stop` is set and `src` is
/// empty. A read of 0 bytes (end of a regular file) counts as empty.
pub fn pump_pages(
    mut src: File,
    dst: File,
    page: usize,
    stop: &AtomicBool,
) -> io::Result<PumpStats> {
    use std::os::unix::io::AsRawFd;
    let mut w = BufWriter::with_capacity(1 << 20, dst);
    let mut buf = vec![0u8; page.max(4096)];
    let mut st = PumpStats::default();
    let mut polled_ready = false;
    loop {
        // Read BEFORE the drain: a buffer emptied after tracing stopped is then complete.
        let stopping = stop.load(Ordering::SeqCst);
        let mut got = false;
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    w.write_all(buf.get(..n).unwrap_or_default())?;
                    st.bytes += n as u64;
                    st.reads += 1;
                    got = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if got {
            st.drains += 1;
        }
        if stopping {
            break;
        }
        // A short gap after a drain, and after a `poll` that said "readable" but gave nothing
        // (the kernel may answer 0 while the writer holds the only page): never spin.
        if got || polled_ready {
            std::thread::sleep(MIN_GAP);
        }
        let mut pfd = libc::pollfd {
            fd: src.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        polled_ready = rc > 0;
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_data()?;
    Ok(st)
}

/// One running reader: its CPU, the file it writes, its thread.
pub struct Reader {
    pub cpu: u32,
    pub path: PathBuf,
    thread: JoinHandle<io::Result<PumpStats>>,
}

/// The readers of every CPU of an instance, and their stop flag. Dropping it stops and joins
/// them (error paths), so the instance's files are closed before it is removed.
pub struct Readers {
    stop: Arc<AtomicBool>,
    readers: Vec<Reader>,
}

impl Readers {
    /// Opens `instance/per_cpu/cpuN/trace_pipe_raw` for each `(N, file)` of `cpus` and starts
    /// a reader copying its pages into `file`.
    pub fn start(instance: &Path, cpus: &[(u32, PathBuf)], page: usize) -> io::Result<Readers> {
        use std::os::unix::fs::OpenOptionsExt;
        let stop = Arc::new(AtomicBool::new(false));
        let mut me = Readers {
            stop: Arc::clone(&stop),
            readers: Vec::new(),
        };
        for (cpu, path) in cpus {
            let (cpu, path) = (*cpu, path.clone());
            let p = instance.join(format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
            let ctx = |e: io::Error, what: &str, p: &Path| {
                io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
            };
            let src = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&p)
                .map_err(|e| ctx(e, "opening", &p))?;
            let dst = File::create(&path).map_err(|e| ctx(e, "creating", &path))?;
            let flag = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name(format!("mmreplay-cpu{cpu}"))
                .spawn(move || pump_pages(src, dst, page, &flag))?;
            me.readers.push(Reader { cpu, path, thread });
        }
        Ok(me)
    }

    /// Sets the stop flag (call it after tracing is off) and waits for every reader. Returns,
    /// per CPU, the page file and what was copied; the first reader error otherwise.
    pub fn finish(mut self) -> io::Result<Vec<(u32, PathBuf, PumpStats)>> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        let mut first = None;
        for r in std::mem::take(&mut self.readers) {
            match r.thread.join() {
                Ok(Ok(st)) => out.push((r.cpu, r.path, st)),
                Ok(Err(e)) => {
                    first.get_or_insert(io::Error::new(
                        e.kind(),
                        format!("reading per_cpu/cpu{}/trace_pipe_raw: {e}", r.cpu),
                    ));
                }
                Err(_) => {
                    first.get_or_insert(io::Error::other(format!(
                        "the reader of cpu{} panicked",
                        r.cpu
                    )));
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for r in self.readers.drain(..) {
            let _ = r.thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_copies_until_empty_then_stops() {
        let dir = std::env::temp_dir().join(format!("mmreplay-pump-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src_p = dir.join("trace_pipe_raw");
        let pages: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src_p, &pages).unwrap();
        let out_p = dir.join("out");
        // Already stopped: a regular file reads to its end and the copy ends there.
        let stop = AtomicBool::new(true);
        let st = pump_pages(
            File::open(&src_p).unwrap(),
            File::create(&out_p).unwrap(),
            4096,
            &stop,
        )
        .unwrap();
        assert_eq!(st.bytes, pages.len() as u64);
        assert_eq!(st.reads, 3);
        assert_eq!(std::fs::read(&out_p).unwrap(), pages);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn readers_of_a_missing_cpu_file_name_it() {
        let dir = std::env::temp_dir().join(format!("mmreplay-readers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = Readers::start(&dir, &[(7, dir.join("cpu7.pages"))], 4096)
            .err()
            .unwrap();
        assert!(e.to_string().contains("per_cpu/cpu7/trace_pipe_raw"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
