//! Expanded forms on disk: expanding a file, restoring one, and the xz of a reference. All
//! of it blocking, all of it streamed through private temporary files (nothing is held whole
//! in memory).

use std::fs::File;
use std::io::{self, Read, Seek, Write};

use deltaglider_archive::Limits;
use liblzma::stream::{Check, Filters, LzmaOptions, Stream};

use crate::codec::DeltaCodec;
use crate::engine::source::PrivateFile;
use crate::error::{Error, IoContext, Result};
use crate::hashing::{HashingReader, HashingWriter};

/// Largest xz dictionary of a compact reference. Preset 9's own 64 MiB dictionary needs
/// about 674 MiB to encode, over the product's 512 MiB bound; 16 MiB needs about 190 MiB.
pub(super) const DICT_CAP: u32 = 16 << 20;

/// Most memory the xz decoder may use on a stored reference; a reference asking for more
/// (a dictionary no writer of this format makes) is refused rather than decoded.
pub(super) const XZ_DECODER_MEMLIMIT: u64 = 256 << 20;

/// A file's expanded form in a private temporary file, with its identity.
#[derive(Debug)]
pub(super) struct Expanded {
    pub file: PrivateFile,
    pub sha256: String,
    pub size: u64,
    /// Why part or all of the file stayed as it was, when it did.
    pub note: Option<String>,
}

fn archive_error(operation: &str, e: deltaglider_archive::Error) -> Error {
    Error::Codec {
        operation: operation.to_string(),
        detail: crate::error::chain(&e),
    }
}

/// Expands `input` within `limits`. A file that cannot be expanded at all (a stream the
/// token form cannot record, say) gets the expanded form that holds its bytes as they are.
pub(super) fn expand_file(mut input: File, limits: &Limits) -> Result<Expanded> {
    match expand_with(&mut input, limits) {
        Ok((mut expanded, report)) => {
            if report.streams_left > 0 {
                expanded.note = Some(format!(
                    "{} of {} deflate streams left compressed ({})",
                    report.streams_left,
                    report.streams + report.streams_left,
                    report
                        .first_left_reason
                        .as_deref()
                        .unwrap_or("no reason given"),
                ));
            }
            Ok(expanded)
        }
        Err(e) => {
            let (mut raw, _) = expand_with(&mut input, &Limits::default().max_streams(0))?;
            raw.note = Some(format!(
                "not expanded ({}); its expanded form is its bytes as they are",
                crate::error::chain(&e)
            ));
            Ok(raw)
        }
    }
}

fn expand_with(
    input: &mut File,
    limits: &Limits,
) -> Result<(Expanded, deltaglider_archive::Expansion)> {
    input
        .rewind()
        .ctx(|| "cannot rewind the upload's snapshot".into())?;
    let file = PrivateFile::new()?;
    let mut out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file.file()));
    let report = deltaglider_archive::expand(&mut *input, &mut out, limits)
        .map_err(|e| archive_error("expand", e))?;
    let (sha256, size, buffered) = out.into_parts();
    buffered
        .into_inner()
        .map_err(|e| Error::io("cannot write the expanded form", e.into_error()))?;
    let expanded = Expanded {
        file,
        sha256,
        size,
        note: None,
    };
    Ok((expanded, report))
}

/// A second handle on `file`, rewound to its first byte (it shares the read position: use
/// one handle at a time). `what` names the file in the error.
fn from_start(file: &File, what: &str) -> Result<File> {
    let mut handle = file.try_clone().ctx(|| format!("cannot reopen {what}"))?;
    handle.rewind().ctx(|| format!("cannot rewind {what}"))?;
    Ok(handle)
}

/// Writes the original bytes of the expanded form `expanded` (read from its start) to `out`.
pub(super) fn restore_into(expanded: &File, out: &mut dyn Write) -> Result<u64> {
    let reader = from_start(expanded, "an expanded form")?;
    deltaglider_archive::restore(reader, out).map_err(|e| match e {
        deltaglider_archive::Error::Io(io) => Error::io("cannot restore the original bytes", io),
        other => archive_error("decode", other),
    })
}

/// The xz dictionary of `preset`, as liblzma's presets have it.
fn preset_dict(preset: u32) -> u32 {
    match preset {
        0 => 256 << 10,
        1 => 1 << 20,
        2 => 2 << 20,
        3 | 4 => 4 << 20,
        5 | 6 => 8 << 20,
        7 => 16 << 20,
        8 => 32 << 20,
        _ => 64 << 20,
    }
}

/// The xz of `expanded` (read from its start) at `preset`, its dictionary capped at
/// [`DICT_CAP`], into a private temporary file.
pub(crate) fn compress_xz(expanded: &File, preset: u32) -> Result<PrivateFile> {
    let xz_error = |e: liblzma::stream::Error| Error::Codec {
        operation: "xz".to_string(),
        detail: e.to_string(),
    };
    let mut options = LzmaOptions::new_preset(preset.min(9)).map_err(xz_error)?;
    options.dict_size(preset_dict(preset).min(DICT_CAP));
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = Stream::new_stream_encoder(&filters, Check::Crc64).map_err(xz_error)?;
    let out = PrivateFile::new()?;
    let mut reader = from_start(expanded, "an expanded form")?;
    let mut encoder = liblzma::write::XzEncoder::new_stream(
        io::BufWriter::with_capacity(1 << 20, out.file()),
        stream,
    );
    io::copy(&mut reader, &mut encoder).ctx(|| "cannot compress the reference".into())?;
    encoder
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .ctx(|| "cannot compress the reference".into())?;
    Ok(out)
}

/// A reader of the content of the xz stream `xz`, within the decoder's memory bound.
pub(super) fn xz_reader<R: Read>(xz: R) -> Result<impl Read> {
    let stream = Stream::new_stream_decoder(XZ_DECODER_MEMLIMIT, 0).map_err(|e| Error::Codec {
        operation: "xz".to_string(),
        detail: e.to_string(),
    })?;
    Ok(liblzma::read::XzDecoder::new_stream(
        io::BufReader::with_capacity(1 << 20, xz),
        stream,
    ))
}

/// SHA-256 and length of the content of the xz stream `xz` (a retired compact reference).
pub(crate) fn xz_content_sha256(xz: &File) -> Result<(String, u64)> {
    let reader = from_start(xz, "a reference")?;
    crate::hashing::sha256_reader(xz_reader(reader)?).ctx(|| "cannot decompress a reference".into())
}

/// What rebuilding the original from what will be stored gave, when it is not the upload.
pub(super) type Mismatch = Option<String>;

/// Rebuilds the original from the xz reference `xz` and checks both layers: the xz content
/// must be the expanded form `expanded_sha256`, and it must restore to `sha256`.
pub(super) fn check_reference(xz: &File, expanded_sha256: &str, sha256: &str) -> Result<Mismatch> {
    let reader = from_start(xz, "the reference")?;
    let mut content = HashingReader::new(xz_reader(reader)?);
    let mut original = HashingWriter::new(io::sink());
    if let Err(e) = deltaglider_archive::restore(&mut content, &mut original) {
        return Ok(Some(format!(
            "its compact reference does not restore: {}",
            crate::error::chain(&e)
        )));
    }
    let (content_sha, _) = content.finish();
    let (original_sha, _) = original.finish();
    Ok(if content_sha != expanded_sha256 {
        Some("its compact reference does not decompress to its expanded form".to_string())
    } else if original_sha != sha256 {
        Some("its compact reference restores to other bytes than the upload's".to_string())
    } else {
        None
    })
}

/// Decodes `delta` against the expanded reference into a private temporary file.
pub(super) fn decode_expanded(
    codec: &dyn DeltaCodec,
    reference: &File,
    delta: &File,
) -> Result<PrivateFile> {
    let out = PrivateFile::new()?;
    let mut w = io::BufWriter::with_capacity(1 << 20, out.file());
    codec.decode(reference, delta, &mut w)?;
    w.into_inner()
        .map_err(|e| Error::io("cannot write the expanded form", e.into_error()))?;
    Ok(out)
}

/// Rebuilds the original from the expanded reference and `delta` exactly as a reader will,
/// and compares it with the upload's `sha256` and `size`.
pub(super) fn check_delta(
    codec: &dyn DeltaCodec,
    reference: &File,
    delta: &File,
    sha256: &str,
    size: u64,
) -> Result<Mismatch> {
    let expanded = match decode_expanded(codec, reference, delta) {
        Ok(e) => e,
        Err(e) => {
            return Ok(Some(format!(
                "its compact delta does not decode: {}",
                crate::error::chain(&e)
            )));
        }
    };
    let mut original = HashingWriter::new(io::sink());
    if let Err(e) = restore_into(expanded.file(), &mut original) {
        return Ok(Some(format!(
            "its compact delta does not restore: {}",
            crate::error::chain(&e)
        )));
    }
    let (rebuilt_sha, rebuilt_size) = original.finish();
    Ok((rebuilt_sha != sha256 || rebuilt_size != size)
        .then(|| "its compact delta rebuilds other bytes than the upload's".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.rewind().unwrap();
        f
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        // a stored-block gzip member is enough for the scanner to find a deflate stream
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        let mut rest = data;
        loop {
            let n = rest.len().min(65535);
            out.push(u8::from(n == rest.len()));
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(&(!(n as u16)).to_le_bytes());
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
        }
        out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn expanded_forms_restore_and_their_xz_checks() {
        let original = gzip(&b"release notes and sources ".repeat(4000));
        let expanded = expand_file(file_with(&original), &Limits::default()).unwrap();
        let mut back = Vec::new();
        restore_into(expanded.file.file(), &mut back).unwrap();
        assert_eq!(back, original);
        let xz = compress_xz(expanded.file.file(), 6).unwrap();
        let sha = crate::hashing::sha256_hex(&original);
        assert_eq!(
            check_reference(xz.file(), &expanded.sha256, &sha).unwrap(),
            None
        );
        assert!(
            check_reference(xz.file(), &expanded.sha256, &"0".repeat(64))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            xz_content_sha256(xz.file()).unwrap(),
            (expanded.sha256.clone(), expanded.size)
        );
    }

    #[test]
    fn a_file_past_the_limits_is_its_own_expanded_form_with_a_reason() {
        let original = gzip(&vec![0u8; 200_000]);
        let limits = Limits::default().max_expanded_len(10);
        let expanded = expand_file(file_with(&original), &limits).unwrap();
        let note = expanded.note.clone().expect("a reason");
        assert!(note.contains("left compressed"), "{note}");
        let mut back = Vec::new();
        restore_into(expanded.file.file(), &mut back).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn the_dictionary_is_capped_whatever_the_preset() {
        assert_eq!(preset_dict(9).min(DICT_CAP), DICT_CAP);
        assert_eq!(preset_dict(6).min(DICT_CAP), 8 << 20);
    }
}
