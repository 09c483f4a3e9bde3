fn main() {
    println!("Record {} Event {}", std::mem::size_of::<mmreplay_parsers::Record>(), std::mem::size_of::<mmreplay_parsers::Event>());
    let p = std::env::args().nth(1).unwrap();
    let t = std::time::Instant::now();
    let d = std::fs::read(&p).unwrap();
    let t1 = t.elapsed();
    let td = mmreplay_parsers::binary::tracedat::TraceDat::parse(&d).unwrap();
    let t2 = t.elapsed();
    let dec = mmreplay_parsers::binary::decode::Decoder::new(&td.meta);
    let t3 = t.elapsed();
    let r = td.records().unwrap();
    let t4 = t.elapsed();
    drop(r);
    let t5 = t.elapsed();
    let _ = dec;
    println!("read {:?} parse {:?} decoder {:?} records {:?} drop {:?}", t1, t2 - t1, t3 - t2, t4 - t3, t5 - t4);
}
#[allow(dead_code)]
fn sizes() {}
