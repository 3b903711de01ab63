//! Reading in the compact format: the delta decoded against the reference's expanded form
//! into a private temporary file, from which the original bytes are restored.

use std::io::{self, Write};

use liblzma::stream::Stream;

use super::expanded;
use crate::deltaspace;
use crate::engine::Engine;
use crate::engine::get::{Resolved, drain_into};
use crate::engine::reference::is_compact_reference;
use crate::engine::source::PrivateFile;
use crate::error::{Error, IoContext, Result};
use crate::storage::ObjectBody;

/// Copies the xz body of a compact reference into `out` as its content.
pub(crate) async fn drain_xz_into(
    body: ObjectBody,
    out: &mut (dyn Write + Send),
) -> io::Result<u64> {
    let stream =
        Stream::new_stream_decoder(expanded::XZ_DECODER_MEMLIMIT, 0).map_err(io::Error::other)?;
    let mut decoder = liblzma::write::XzDecoder::new_stream(out, stream);
    drain_into(body, &mut decoder).await?;
    decoder.try_finish()?;
    Ok(decoder.total_out())
}

/// Writes the original bytes of the expanded form `expanded` to `out`.
pub(crate) fn restore_into(expanded: &PrivateFile, out: &mut dyn Write) -> Result<u64> {
    expanded::restore_into(expanded.file(), out)
}

impl Engine {
    /// The expanded form of the compact delta `resolved`, decoded against its verified
    /// reference into a private temporary file.
    pub(in crate::engine) async fn compact_expanded(
        &self,
        bucket: &str,
        resolved: &Resolved,
        what: &str,
    ) -> Result<PrivateFile> {
        let invalid = |reason: &str| Error::InvalidMetadata {
            bucket: bucket.to_string(),
            key: resolved.stored_key.clone(),
            reason: reason.to_string(),
        };
        let ref_sha = resolved
            .meta
            .ref_sha256
            .clone()
            .ok_or_else(|| invalid("delta has no dg-ref-sha256"))?;
        let ref_key = resolved
            .meta
            .reference_key(deltaspace::of_key(&resolved.stored_key));
        if !is_compact_reference(&ref_key) {
            return Err(invalid(
                "a compact delta whose dg-ref-key is no compact reference",
            ));
        }
        let reference = self
            .reference_handle(bucket, &ref_key, &ref_sha, what)
            .await?;
        let reader = self.store.get_object(bucket, &resolved.stored_key).await?;
        let delta = PrivateFile::new()?;
        drain_into(reader.body, &mut delta.file())
            .await
            .ctx(|| format!("cannot download {what}"))?;
        let (codec, what) = (self.codec.clone(), what.to_string());
        self.cpu_bound("decoder", move || {
            expanded::decode_expanded(&*codec, &reference, delta.file()).map_err(|e| match e {
                Error::Codec { operation, detail } => Error::Codec {
                    operation,
                    detail: format!("{what}: {detail}"),
                },
                other => other,
            })
        })
        .await
    }
}
