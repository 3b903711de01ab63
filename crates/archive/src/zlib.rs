//! The zlib compiled into this crate (libz-sys with its `static` feature builds the zlib source
//! it ships, whatever the system has), used as raw deflate: an encoder that reproduces a
//! stream from its plain bytes, and a decoder that gives those bytes.
//!
//! An encoder's output depends on its exact source, so the version it reports at run time is
//! recorded with every stream it is to reproduce ([`encoder_id`]), and a reader whose zlib
//! differs refuses such a stream instead of writing other bytes.

use std::alloc::{Layout, alloc, dealloc};
use std::ffi::{CStr, c_int, c_uint, c_ulong, c_void};
use std::ptr;
use std::sync::OnceLock;

use libz_sys as z;

/// The name of the plain tier's encoder as an expanded form records it: `zlib `, the version
/// the zlib this crate is built with reports, and a fingerprint of its output (the CRC-32 of
/// a fixed sample compressed at every level), so that a zlib whose version string stays but
/// whose output changed is told apart too. Plain segments of any other encoder are refused
/// by [`restore`](crate::restore).
pub fn encoder_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        // SAFETY: zlibVersion returns a static, zero-terminated string.
        let v = unsafe { CStr::from_ptr(z::zlibVersion()) };
        format!("zlib {} {:08x}", v.to_string_lossy(), fingerprint())
    })
    .clone()
}

/// CRC-32 of a fixed, text-like sample compressed at levels 1 to 9.
fn fingerprint() -> u32 {
    let mut sample = Vec::with_capacity(1 << 17);
    let mut x = 0x2545_f491_u32;
    while sample.len() < 1 << 17 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let word = [
            "alpha",
            "beta",
            "\"name\": ",
            "{",
            "}",
            ",\n",
            "0123",
            "service",
        ][(x % 8) as usize];
        sample.extend_from_slice(word.as_bytes());
        sample.push(b'a' + (x >> 8) as u8 % 26);
    }
    let mut crc = 0u32;
    let mut out = vec![0u8; 1 << 18];
    for level in 1..=9 {
        let params = Params {
            level,
            window_bits: 15,
            mem_level: 8,
            strategy: 0,
        };
        let Some(mut d) = Deflater::new(params) else {
            return 0;
        };
        let (_, written, _) = d.compress(&sample, &mut out, true);
        // SAFETY: crc32 reads `written` bytes of `out`, all initialised.
        crc = unsafe { z::crc32(c_ulong::from(crc), out.as_ptr(), written as c_uint) } as u32;
    }
    crc
}

/// Encoder parameters that decide a raw deflate stream's bytes given its plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// 1..=9. Level 0 is left out: its stored blocks are sized by how much input and
    /// output space each call has, so its output depends on more than these parameters.
    pub(crate) level: u8,
    /// 9..=15 (zlib raises a raw window of 8 to 9).
    pub(crate) window_bits: u8,
    /// 1..=9.
    pub(crate) mem_level: u8,
    /// 0 default, 1 filtered, 2 Huffman only, 3 RLE, 4 fixed.
    pub(crate) strategy: u8,
}

impl Params {
    pub(crate) fn valid(&self) -> bool {
        (1..=9).contains(&self.level)
            && (9..=15).contains(&self.window_bits)
            && (1..=9).contains(&self.mem_level)
            && self.strategy <= 4
    }
}

/// Alignment and header size of the blocks handed to zlib (the header keeps the size).
const ALIGN: usize = 16;

unsafe extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let Some(n) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|n| n.checked_add(ALIGN))
    else {
        return ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(n, ALIGN) else {
        return ptr::null_mut();
    };
    // SAFETY: n >= ALIGN > 0; the size is written in the header and the block after it is
    // returned, as zfree expects.
    unsafe {
        let p = alloc(layout);
        if p.is_null() {
            return ptr::null_mut();
        }
        (p as *mut usize).write(n);
        p.add(ALIGN) as *mut c_void
    }
}

unsafe extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: address came from zalloc, whose header holds the size it allocated.
    unsafe {
        let p = (address as *mut u8).sub(ALIGN);
        let n = (p as *const usize).read();
        dealloc(p, Layout::from_size_align_unchecked(n, ALIGN));
    }
}

/// A z_stream at a fixed address (zlib's state points back at it), freed on drop.
struct Stream {
    strm: Box<z::z_stream>,
    deflate: bool,
}

impl Stream {
    fn new(deflate: bool) -> Self {
        let strm = Box::new(z::z_stream {
            next_in: ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: ptr::null_mut(),
            state: ptr::null_mut(),
            zalloc,
            zfree,
            opaque: ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        Stream { strm, deflate }
    }

    /// Runs one call over `input` into `output`; returns (bytes read, bytes written, code).
    fn step(&mut self, input: &[u8], output: &mut [u8], flush: c_int) -> (usize, usize, c_int) {
        let in_len = input.len().min(c_uint::MAX as usize);
        let out_len = output.len().min(c_uint::MAX as usize);
        self.strm.next_in = input.as_ptr() as *mut u8;
        self.strm.avail_in = in_len as c_uint;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = out_len as c_uint;
        // SAFETY: the stream was initialised (constructors return only initialised ones);
        // zlib reads at most avail_in bytes of input and writes at most avail_out of output,
        // and does not keep either pointer for later (they are reset on every call).
        let code = unsafe {
            if self.deflate {
                z::deflate(&mut *self.strm, flush)
            } else {
                z::inflate(&mut *self.strm, flush)
            }
        };
        let read = in_len - self.strm.avail_in as usize;
        let written = out_len - self.strm.avail_out as usize;
        self.strm.next_in = ptr::null_mut();
        self.strm.next_out = ptr::null_mut();
        (read, written, code)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: End frees the state of an initialised stream; on one whose initialisation
        // failed, zlib left no state and End returns an error without touching anything.
        unsafe {
            if self.deflate {
                z::deflateEnd(&mut *self.strm);
            } else {
                z::inflateEnd(&mut *self.strm);
            }
        }
    }
}

/// A raw deflate encoder.
pub(crate) struct Deflater(Stream);

impl Deflater {
    /// `None` when zlib refuses the parameters or has no memory.
    pub(crate) fn new(p: Params) -> Option<Self> {
        if !p.valid() {
            return None;
        }
        let mut s = Stream::new(true);
        // SAFETY: strm is a boxed, fully initialised z_stream with valid allocators; the
        // version and size let zlib check that this struct matches its own.
        let code = unsafe {
            z::deflateInit2_(
                &mut *s.strm,
                c_int::from(p.level),
                z::Z_DEFLATED,
                -c_int::from(p.window_bits),
                c_int::from(p.mem_level),
                c_int::from(p.strategy),
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        // On failure zlib leaves no state behind, and ending such a stream is a no-op.
        (code == z::Z_OK).then_some(Deflater(s))
    }

    /// Compresses from `input` into `output`; `finish` once all input is given. Returns
    /// (bytes read, bytes written, whether the stream is complete).
    pub(crate) fn compress(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        finish: bool,
    ) -> (usize, usize, bool) {
        let flush = if finish { z::Z_FINISH } else { z::Z_NO_FLUSH };
        let (r, w, code) = self.0.step(input, output, flush);
        (r, w, code == z::Z_STREAM_END)
    }
}

/// A raw deflate decoder (a window of 32 KiB, the largest deflate allows).
pub(crate) struct Inflater(Stream);

/// What one call of [`Inflater::decompress`] did.
pub(crate) struct Inflated {
    pub(crate) read: usize,
    pub(crate) written: usize,
    /// The stream's final block has ended.
    pub(crate) end: bool,
}

impl Inflater {
    pub(crate) fn new() -> Option<Self> {
        let mut s = Stream::new(false);
        // SAFETY: as for the deflater.
        let code = unsafe {
            z::inflateInit2_(
                &mut *s.strm,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        (code == z::Z_OK).then_some(Inflater(s))
    }

    /// Decompresses from `input` into `output`; `None` when the data is not valid deflate.
    pub(crate) fn decompress(&mut self, input: &[u8], output: &mut [u8]) -> Option<Inflated> {
        let (read, written, code) = self.0.step(input, output, z::Z_NO_FLUSH);
        match code {
            z::Z_OK | z::Z_BUF_ERROR => Some(Inflated {
                read,
                written,
                end: false,
            }),
            z::Z_STREAM_END => Some(Inflated {
                read,
                written,
                end: true,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_zlib_is_linked_not_the_systems() {
        // The version of the zlib source libz-sys ships; a system zlib would report its own.
        // Pinned on purpose: if this changes, plain segments written before no longer restore
        // (they are refused), so a new zlib is a change of the expanded form.
        assert_eq!(encoder_id(), "zlib 1.4 150ff068");
    }

    #[test]
    fn compresses_and_decompresses() {
        let plain: Vec<u8> = (0..100_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect();
        let p = Params {
            level: 6,
            window_bits: 15,
            mem_level: 8,
            strategy: 0,
        };
        let mut d = Deflater::new(p).unwrap();
        let mut packed = vec![0u8; 200_000];
        let (r, w, done) = d.compress(&plain, &mut packed, true);
        assert!(done && r == plain.len());
        packed.truncate(w);
        let mut i = Inflater::new().unwrap();
        let mut out = vec![0u8; 200_000];
        let got = i.decompress(&packed, &mut out).unwrap();
        assert!(got.end);
        assert_eq!(&out[..got.written], &plain[..]);
        assert!(
            Inflater::new()
                .unwrap()
                .decompress(&[0xff; 8], &mut out)
                .is_none()
        );
        assert!(Deflater::new(Params { level: 10, ..p }).is_none());
        assert!(Deflater::new(Params { level: 0, ..p }).is_none());
    }
}
