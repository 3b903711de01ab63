//! Bit-level reading and writing, least significant bit first, as deflate packs its bits.

use std::io::{self, Read, Write};

use crate::{Error, Input, Result};

const BUFFER: usize = 64 * 1024;

/// Reads bits from a byte stream, holding up to 64 of them ahead.
pub(crate) struct BitReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    eof: bool,
    bits: u64,
    nbits: u32,
    consumed: u64,
    input: Input,
}

impl<R: Read> BitReader<R> {
    pub(crate) fn new(inner: R, input: Input) -> Self {
        BitReader {
            inner,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            bits: 0,
            nbits: 0,
            consumed: 0,
            input,
        }
    }

    /// Tops the bit buffer up to at least 57 bits, or to whatever is left of the input.
    fn refill(&mut self) -> io::Result<()> {
        while self.nbits <= 56 {
            if self.pos == self.end {
                if self.eof {
                    return Ok(());
                }
                self.end = loop {
                    match self.inner.read(&mut self.buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                };
                self.pos = 0;
                if self.end == 0 {
                    self.eof = true;
                    return Ok(());
                }
            }
            self.bits |= u64::from(self.buf[self.pos]) << self.nbits;
            self.pos += 1;
            self.nbits += 8;
        }
        Ok(())
    }

    /// The next `n` (<= 32) bits without consuming them, zero past the end of the input,
    /// and how many of them are real.
    pub(crate) fn peek(&mut self, n: u32) -> Result<(u32, u32)> {
        if self.nbits < n {
            self.refill()?;
        }
        Ok(((self.bits & mask(n)) as u32, self.nbits.min(n)))
    }

    pub(crate) fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.nbits);
        self.bits >>= n;
        self.nbits -= n;
        self.consumed += u64::from(n);
    }

    /// Reads `n` (<= 32) bits.
    pub(crate) fn read(&mut self, n: u32) -> Result<u32> {
        let (v, have) = self.peek(n)?;
        if have < n {
            return Err(Error::Truncated(self.input));
        }
        self.consume(n);
        Ok(v)
    }

    /// Drops the bits up to the next byte boundary and returns them.
    pub(crate) fn align(&mut self) -> u8 {
        let n = self.nbits % 8;
        let v = (self.bits & mask(n)) as u8;
        self.consume(n);
        v
    }

    /// Copies `n` whole bytes (the reader is at a byte boundary) to `out`.
    pub(crate) fn copy_bytes(&mut self, mut n: usize, out: &mut impl Write) -> Result<()> {
        debug_assert_eq!(self.nbits % 8, 0);
        while n > 0 {
            if self.nbits > 0 {
                out.write_all(&[self.bits as u8])?;
                self.consume(8);
                n -= 1;
            } else if self.pos < self.end {
                let take = n.min(self.end - self.pos);
                out.write_all(&self.buf[self.pos..self.pos + take])?;
                self.pos += take;
                self.consumed += 8 * take as u64;
                n -= take;
            } else {
                self.refill()?;
                if self.nbits == 0 {
                    return Err(Error::Truncated(self.input));
                }
            }
        }
        Ok(())
    }

    /// How many bits have been consumed so far.
    pub(crate) fn consumed_bits(&self) -> u64 {
        self.consumed
    }

    /// The bytes read from the input but not consumed (the reader is at a byte boundary).
    pub(crate) fn into_leftover(mut self) -> Vec<u8> {
        debug_assert_eq!(self.nbits % 8, 0);
        let mut out = Vec::with_capacity(self.nbits as usize / 8 + self.end - self.pos);
        while self.nbits > 0 {
            out.push(self.bits as u8);
            self.consume(8);
        }
        out.extend_from_slice(&self.buf[self.pos..self.end]);
        out
    }
}

fn mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Writes bits to a byte stream.
pub(crate) struct BitWriter<W> {
    inner: W,
    buf: Vec<u8>,
    bits: u64,
    nbits: u32,
    written: u64,
}

impl<W: Write> BitWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        BitWriter {
            inner,
            buf: Vec::with_capacity(BUFFER),
            bits: 0,
            nbits: 0,
            written: 0,
        }
    }

    /// Bits written so far.
    pub(crate) fn bit_len(&self) -> u64 {
        self.written
    }

    /// Writes the low `n` (<= 32) bits of `v`.
    pub(crate) fn write(&mut self, v: u32, n: u32) -> io::Result<()> {
        self.bits |= (u64::from(v) & mask(n)) << self.nbits;
        self.nbits += n;
        self.written += u64::from(n);
        while self.nbits >= 8 {
            self.buf.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits -= 8;
        }
        if self.buf.len() >= BUFFER {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// How many bits are needed to reach a byte boundary.
    pub(crate) fn to_boundary(&self) -> u32 {
        (8 - self.nbits % 8) % 8
    }

    /// Writes whole bytes (the writer is at a byte boundary).
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert_eq!(self.nbits, 0);
        self.buf.extend_from_slice(bytes);
        self.written += 8 * bytes.len() as u64;
        if self.buf.len() >= BUFFER {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Flushes everything (the writer is at a byte boundary) and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        debug_assert_eq!(self.nbits, 0);
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}
