//! Signal handling while `record` runs: SIGINT, SIGTERM and SIGHUP only set a flag, which the
//! wait loop turns into "kill the workload, stop tracing, save, clean up", so tracefs is never
//! left changed by a signal. It must never do anything in the handler but store atomics.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNO: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: two atomic stores.
    SIGNO.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers. Call it before anything is made in tracefs that a signal could strand.
pub fn install() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `sa` is fully initialised (zeroed + handler + empty mask); the handler only
        // touches atomics.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("sigaction({sig}): {e}")));
        }
    }
    Ok(())
}

/// The signal that asked the recorder to stop, if one came.
pub fn stop_requested() -> Option<i32> {
    STOP.load(Ordering::SeqCst)
        .then(|| SIGNO.load(Ordering::SeqCst))
}
