//! Prints the records of a binary capture (trace.dat, perf.data, `.zst`, `-`), one per line, for
//! eyeballing against `trace-cmd report` / `perf script`. Never used by tests.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(p) = args.next() else {
        eprintln!("usage: binary_dump FILE [max]");
        std::process::exit(2);
    };
    let max: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    match mmreplay_parsers::binary::read_path(std::path::Path::new(&p)) {
        Ok(c) => {
            println!(
                "format={} records={} formats={} format_errors={}",
                c.format.name(),
                c.records.len(),
                c.formats,
                c.format_errors.len()
            );
            for e in &c.format_errors {
                println!("format error: {e}");
            }
            for r in c.records.iter().take(max) {
                println!("{} {} {} {:?} {:?}", r.ts_ns, r.cpu, r.pid, r.comm, r.event);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
