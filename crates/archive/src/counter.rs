//! Counting what is written.

use std::io::{self, Write};

/// Counts the bytes written through it.
pub(crate) struct Counter<W> {
    pub(crate) inner: W,
    pub(crate) count: u64,
}

impl<W> Counter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Counter { inner, count: 0 }
    }
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
