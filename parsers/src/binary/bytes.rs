//! Bounds-checked little/big-endian cursor over a byte slice, used by every binary reader.
//!
//! Every read names the byte offset it failed at. It must never panic or allocate from a length
//! field: callers get slices of the input, never buffers sized by untrusted numbers.

use super::BinaryError;

/// Byte order of a capture (trace.dat header byte, perf magic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// A cursor over `data`; `base` is added to positions in error messages so that errors inside a
/// sub-slice (a section, a feature) still name the offset in the whole file.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    endian: Endian,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], base: u64, endian: Endian, what: &'static str) -> Self {
        Cursor {
            data,
            pos: 0,
            base,
            endian,
            what,
        }
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }

    pub fn set_endian(&mut self, e: Endian) {
        self.endian = e;
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Offset in the whole file of the current position.
    pub fn file_offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }

    pub fn seek(&mut self, pos: usize) -> Result<(), BinaryError> {
        if pos > self.data.len() {
            return Err(self.truncated(pos - self.data.len().min(pos), "seek target"));
        }
        self.pos = pos;
        Ok(())
    }

    fn truncated(&self, need: usize, field: &'static str) -> BinaryError {
        BinaryError::Truncated {
            what: self.what,
            field,
            offset: self.file_offset(),
            need: need as u64,
            have: self.remaining() as u64,
        }
    }

    /// Takes `n` bytes; `n` comes from the input, so it is checked against what is left first.
    pub fn take(&mut self, n: u64, field: &'static str) -> Result<&'a [u8], BinaryError> {
        let n_us = usize::try_from(n).unwrap_or(usize::MAX);
        if n_us > self.remaining() {
            return Err(BinaryError::Truncated {
                what: self.what,
                field,
                offset: self.file_offset(),
                need: n,
                have: self.remaining() as u64,
            });
        }
        let s = self.data.get(self.pos..self.pos + n_us).unwrap_or(&[]);
        self.pos += n_us;
        Ok(s)
    }

    pub fn skip(&mut self, n: u64, field: &'static str) -> Result<(), BinaryError> {
        self.take(n, field).map(|_| ())
    }

    fn arr<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BinaryError> {
        let s = self.take(N as u64, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, BinaryError> {
        Ok(self.arr::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, BinaryError> {
        let a = self.arr::<2>(field)?;
        Ok(match self.endian {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, BinaryError> {
        let a = self.arr::<4>(field)?;
        Ok(match self.endian {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, BinaryError> {
        let a = self.arr::<8>(field)?;
        Ok(match self.endian {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        })
    }

    /// A NUL-terminated string (the NUL is consumed, not returned).
    pub fn cstr(&mut self, field: &'static str) -> Result<&'a [u8], BinaryError> {
        let rest = self.rest();
        match memchr::memchr(0, rest) {
            Some(n) => {
                let s = rest.get(..n).unwrap_or(&[]);
                self.pos += n + 1;
                Ok(s)
            }
            None => Err(BinaryError::Invalid {
                what: self.what,
                offset: self.file_offset(),
                msg: format!("{field}: no terminating NUL"),
            }),
        }
    }
}

/// Reads an unsigned integer of `size` bytes (1, 2, 4 or 8) at `off` of `data`.
/// Returns `None` when out of bounds or of another size.
#[inline]
pub fn read_uint(data: &[u8], off: usize, size: usize, endian: Endian) -> Option<u64> {
    let s = data.get(off..off.checked_add(size)?)?;
    Some(match (size, endian) {
        (1, _) => u64::from(s[0]),
        (2, Endian::Little) => u64::from(u16::from_le_bytes([s[0], s[1]])),
        (2, Endian::Big) => u64::from(u16::from_be_bytes([s[0], s[1]])),
        (4, Endian::Little) => u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        (4, Endian::Big) => u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        (8, e) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            match e {
                Endian::Little => u64::from_le_bytes(a),
                Endian::Big => u64::from_be_bytes(a),
            }
        }
        _ => return None,
    })
}

/// Sign-extends the low `size` bytes of `v`.
#[inline]
pub fn sign_extend(v: u64, size: usize) -> i64 {
    match size {
        1 => v as u8 as i8 as i64,
        2 => v as u16 as i16 as i64,
        4 => v as u32 as i32 as i64,
        _ => v as i64,
    }
}
