//! Canonical byte encoding of everything that is hashed, signed or sent.
//!
//! The layout is specified byte by byte in `protocols/encoding.md` and pinned by the golden vectors in
//! `protocols/vectors/`. It is written by hand on purpose: a serde or crate upgrade must never change a
//! hash. Integers are little-endian and fixed-width; there are no optional fields and no varints, so
//! every value has exactly one encoding and `decode(encode(x)) == x` and `encode(decode(b)) == b` for
//! every accepted `b`.
//!
//! Decoders never trust a length they read: every count is checked against a cap before anything
//! is allocated, and trailing bytes are an error.

use thiserror::Error;

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("unexpected end of input: needed {needed} more bytes at offset {offset}")]
    UnexpectedEnd {
        /// Offset at which the read started.
        offset: usize,
        /// Bytes that were missing.
        needed: usize,
    },
    /// The value ended before the input did.
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    /// A version byte this node does not know.
    #[error("unknown {what} version {version}")]
    UnknownVersion {
        /// What carried the version byte.
        what: &'static str,
        /// The version read.
        version: u8,
    },
    /// A transaction kind tag this node does not know.
    #[error("unknown transaction kind {0}")]
    UnknownTxKind(u8),
    /// A count or length above its cap.
    #[error("{what} is {got}, above the cap of {cap}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The value read.
        got: u64,
        /// The cap.
        cap: u64,
    },
    /// A length prefix that disagrees with the value it prefixes.
    #[error("{what} length prefix says {declared} bytes but the value is {actual} bytes")]
    LengthMismatch {
        /// What was prefixed.
        what: &'static str,
        /// Length in the prefix.
        declared: usize,
        /// Length of the decoded value.
        actual: usize,
    },
}

/// Appends canonical encodings to a byte vector.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends a little-endian u128.
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Appends raw bytes (fixed-size fields).
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Overwrites a u32 written earlier at `offset` (for length prefixes).
    pub fn patch_u32(&mut self, offset: usize, v: u32) {
        self.buf[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads canonical encodings from a byte slice, never past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd { offset: self.pos, needed: n - self.remaining() });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// Reads a little-endian u128.
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array()?))
    }
    /// Reads a `u32` length prefix, refuses it above `cap` (naming `what`), and takes that many bytes.
    pub fn length_prefixed(&mut self, cap: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > cap {
            return Err(DecodeError::TooLarge { what, got: len as u64, cap: cap as u64 });
        }
        self.take(len)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32(), Err(DecodeError::UnexpectedEnd { offset: 0, needed: 1 }));
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(2)));
    }

    #[test]
    fn integers_are_little_endian() {
        let mut w = Writer::default();
        w.u32(0x0403_0201);
        w.u64(1);
        assert_eq!(w.finish(), vec![1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
