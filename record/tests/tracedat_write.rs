//! The trace.dat writer of `mmreplay record`, on real ring-buffer pages: the raw capture in
//! `corpus/paired/raw` (pages, formats, comms and symbols copied from tracefs by
//! `capture_raw.sh`) written as a trace.dat v7 must read back as exactly the records the raw
//! directory gives. `record_e2e` checks the same files with `trace-cmd report` (root only).
use std::fs;
use std::path::{Path, PathBuf};

use mmreplay_parsers::binary;
use mmreplay_record::tracedat_write::{self, DatMeta, PageHeader};

fn raw_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/paired/raw")
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmreplay-datw-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// The metadata of the raw directory, as the recorder collects it from tracefs.
fn meta_of(dir: &Path) -> DatMeta {
    let ev = dir.join("events");
    let mut systems = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(&ev)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    for sys in names {
        let mut evs: Vec<PathBuf> = fs::read_dir(&sys)
            .unwrap()
            .map(|e| e.unwrap().path().join("format"))
            .filter(|p| p.is_file())
            .collect();
        evs.sort();
        let name = sys.file_name().unwrap().to_string_lossy().into_owned();
        systems.push((name, evs.iter().map(|f| fs::read(f).unwrap()).collect()));
    }
    DatMeta {
        header_page: fs::read(ev.join("header_page")).unwrap(),
        header_event: fs::read(ev.join("header_event")).unwrap(),
        ftrace_formats: Vec::new(),
        systems,
        kallsyms: fs::read(dir.join("kallsyms")).unwrap(),
        printk: Vec::new(),
        cmdlines: fs::read(dir.join("saved_cmdlines")).unwrap(),
        trace_clock: "[local] global counter".into(),
        clock: "local".into(),
        uname: "Linux (none) test".into(),
        version: "mmreplay test".into(),
        cpu_count: 2,
        cpustats: vec![(0, "entries: 0\noverrun: 0\n".into())],
        page_size: 4096,
        subbuf_size: 4096,
    }
}

/// Writes `dir` (a raw capture) as a trace.dat at `out`, compressing at `level`.
fn write(
    dir: &Path,
    work: &Path,
    out: &Path,
    level: i32,
) -> Vec<(u32, tracedat_write::CpuWritten)> {
    let meta = meta_of(dir);
    let header = PageHeader::parse(&meta.header_page);
    let mut cpus = Vec::new();
    for cpu in 0..2u32 {
        let pages = dir.join(format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let z = work.join(format!("cpu{cpu}.zchunks"));
        let st = tracedat_write::compress_pages(&pages, &z, 4096, header, level).unwrap();
        cpus.push((cpu, z, st));
    }
    let mut f = fs::File::create(out).unwrap();
    tracedat_write::write_dat(&mut f, out, &meta, &cpus, level).unwrap();
    cpus.into_iter().map(|(c, _, st)| (c, st)).collect()
}

#[test]
fn written_trace_dat_reads_back_as_the_raw_pages() {
    let work = tmp("roundtrip");
    let out = work.join("paired.trace.dat");
    let written = write(&raw_dir(), &work, &out, 3);
    let want = binary::rawdir::read_raw_dir(&raw_dir()).unwrap();
    assert!(
        want.len() > 400,
        "only {} records in the raw capture",
        want.len()
    );
    let data = fs::read(&out).unwrap();
    assert!(binary::tracedat::is_trace_dat(&data));
    let got = binary::read_bytes(&data).unwrap();
    assert_eq!(got.format, binary::BinaryFormat::TraceDatV7);
    assert_eq!(got.records.len(), want.len());
    assert_eq!(
        got.records, want,
        "trace.dat records differ from the raw pages'"
    );
    // Every page went in, in chunks, and the pages say nothing was missed.
    for (cpu, st) in &written {
        let len = fs::metadata(raw_dir().join(format!("per_cpu/cpu{cpu}/trace_pipe_raw")))
            .unwrap()
            .len();
        assert_eq!(st.bytes, len, "cpu{cpu}");
        assert_eq!(st.pages * 4096, len, "cpu{cpu}");
        assert_eq!(st.missed_pages, 0, "cpu{cpu}");
    }
    // The container: compressed, two CPUs, the clock of the capture.
    let td = binary::tracedat::TraceDat::parse(&data).unwrap();
    assert_eq!(td.info.version, 7);
    assert_eq!(td.info.compression.as_deref(), Some("zstd"));
    assert_eq!(td.info.nr_cpus, 2);
    assert_eq!(td.info.clock.as_deref(), Some("local"));
    assert_eq!(td.info.buffers.len(), 1);
    assert_eq!(td.info.buffers[0].name, "");
    let _ = fs::remove_dir_all(&work);
}

/// Sections point at each other by offset and trace-cmd walks them by size: a file whose sizes
/// were off by a byte would read as garbage. Walking the sections from the header must land
/// exactly on the end of the file.
#[test]
fn sections_tile_the_file_exactly() {
    let work = tmp("tile");
    let out = work.join("t.dat");
    write(&raw_dir(), &work, &out, 1);
    let d = fs::read(&out).unwrap();
    // magic(3) "tracing"(7) "7\0"(2) endian(1) long(1) page(4) "zstd\0" version\0 u64
    let mut at = 18 + 5;
    at += d[at..].iter().position(|&b| b == 0).unwrap() + 1;
    let first_options = u64::from_le_bytes(d[at..at + 8].try_into().unwrap());
    at += 8;
    let mut ids = Vec::new();
    while at < d.len() {
        let id = u16::from_le_bytes(d[at..at + 2].try_into().unwrap());
        let size = u64::from_le_bytes(d[at + 8..at + 16].try_into().unwrap());
        ids.push((id, at as u64));
        at += 16 + size as usize;
    }
    assert_eq!(at, d.len(), "sections overrun the file: {ids:?}");
    let got: Vec<u16> = ids.iter().map(|(i, _)| *i).collect();
    assert_eq!(got, vec![15, 16, 17, 18, 19, 20, 21, 3, 0]);
    assert_eq!(ids.last().unwrap().1, first_options);
    let _ = fs::remove_dir_all(&work);
}

/// A page file cut mid-page (a recorder killed while writing) is padded to a whole page, so the
/// chunk sizes stay page multiples and the events before the cut still read.
#[test]
fn a_partial_last_page_is_padded_not_lost() {
    let work = tmp("partial");
    let src = raw_dir().join("per_cpu/cpu0/trace_pipe_raw");
    let all = fs::read(&src).unwrap();
    assert!(all.len() >= 2 * 4096);
    let cut = work.join("cut.pages");
    fs::write(&cut, &all[..4096 + 100]).unwrap();
    let meta = meta_of(&raw_dir());
    let z = work.join("cut.zchunks");
    let st =
        tracedat_write::compress_pages(&cut, &z, 4096, PageHeader::parse(&meta.header_page), 3)
            .unwrap();
    assert_eq!((st.pages, st.bytes, st.chunks), (2, 8192, 1));
    let _ = fs::remove_dir_all(&work);
}
