//! Standard output that fails loudly: a full disk or an I/O error on stdout (`> /dev/full`) is
//! the usual error line and exit 2, never a panic (exit 101) and never a silent exit 0 with the
//! output lost. A closed pipe (`| head`) still ends the process quietly (SIGPIPE, see main).

use std::io::Write as _;

/// Writes `bytes` to stdout and flushes; any error but a closed pipe is returned.
pub fn write_all(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("<stdout>: cannot write"))
        }
        _ => Ok(()),
    }
}

/// Flushes what `print!` left buffered (main calls it after the command).
pub fn flush() -> anyhow::Result<()> {
    write_all(&[])
}

/// `print!` panics when stdout fails; this hook turns that panic into `mmreplay NAME: error:
/// <stdout>: cannot write, because: REASON` and exit 2. Every other panic keeps the default report.
pub fn exit_on_print_failure(name: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(reason) = msg.strip_prefix("failed printing to stdout: ") {
            eprintln!("mmreplay {name}: error: <stdout>: cannot write, because: {reason}");
            std::process::exit(2);
        }
        default(info);
    }));
}
