//! `Comm::new` keeps exactly the first 16 bytes (TASK_COMM_LEN) of any input, zero-padded.
//! Checked against a straightforward reference for every length around the limit.

use mmreplay_parsers::record::Comm;

#[test]
fn comm_new_matches_a_plain_copy() {
    for len in 0..40usize {
        let raw: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(37) ^ 0xa5)
            .collect();
        let c = Comm::new(&raw);
        let n = len.min(16);
        assert_eq!(c.as_bytes(), &raw[..n], "len {len}");
        // Same value (and so same Eq/Hash/Ord) as a comm built from the truncated bytes.
        assert_eq!(c, Comm::new(&raw[..n]));
        let mut padded = raw[..n].to_vec();
        padded.resize(16, 0);
        assert_eq!(Comm::new(&padded[..n]).as_bytes(), &raw[..n]);
    }
    assert!(Comm::new(b"ab") < Comm::new(b"ac"));
    assert_eq!(Comm::default(), Comm::new(b""));
}
