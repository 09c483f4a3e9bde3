//! Compares a binary capture with its text rendering through the crate's own text parser and
//! prints the first differences (diagnostic tool for the paired corpus; tests assert the same).
use mmreplay_parsers::input::{open, Options};
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bin), Some(txt)) = (a.first(), a.get(1)) else {
        eprintln!("usage: binary_vs_text BIN TEXT");
        std::process::exit(2);
    };
    let b = mmreplay_parsers::binary::read_path(std::path::Path::new(bin))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut src = open(txt, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut t = Vec::new();
    while let Some(r) = src.next_record().unwrap_or_else(|e| panic!("{e}")) {
        t.push(r);
    }
    println!(
        "binary {} text {} diag {:?}",
        b.records.len(),
        t.len(),
        src.diagnostics()
    );
    let mut shown = 0;
    for (i, (x, y)) in b.records.iter().zip(&t).enumerate() {
        let mut x = x.clone();
        let mut y = y.clone();
        let round = std::env::var("ROUND").is_ok();
        x.ts_ns = if round {
            (x.ts_ns + 500) / 1000 * 1000
        } else {
            x.ts_ns / 1000 * 1000
        };
        if std::env::var("NOCOMM").is_ok() {
            y.comm = x.comm;
        }
        if let (
            mmreplay_parsers::Event::TlbFlush { reason: a, .. },
            mmreplay_parsers::Event::TlbFlush { reason: b, .. },
        ) = (&mut x.event, &mut y.event)
        {
            a.text = a.text.to_lowercase().into();
            b.text = b.text.to_lowercase().into();
        }
        if x != y {
            println!("#{i}\n bin {x:?}\n txt {y:?}");
            shown += 1;
            if shown > 8 {
                break;
            }
        }
    }
}
