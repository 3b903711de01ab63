//! The object file: magic `DGLOBJ1\n`, a little-endian `u32` header length, the header (JSON
//! with the user metadata, content type and other HTTP headers), then the object's bytes. Data and metadata
//! live in one file so that one `rename` or `link` publishes both.

use std::fs::File;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::metadata::UserMetadata;
use crate::storage::{ObjectHeaders, ObjectInfo};

pub(super) const MAGIC: &[u8; 8] = b"DGLOBJ1\n";
/// Largest header we accept when reading (metadata is limited to a few KiB on S3 anyway).
const MAX_HEADER: u32 = 1 << 20;

#[derive(Debug, Serialize, Deserialize, Default)]
pub(super) struct Header {
    pub(super) metadata: UserMetadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) content_type: Option<String>,
    /// Cache-Control and the like, kept and returned as S3 does. Absent from objects written
    /// before headers were recorded (and from those without any), which read as none.
    /// Storage class, encryption and ACLs have no meaning here and are not recorded.
    #[serde(default, skip_serializing_if = "ObjectHeaders::is_empty")]
    pub(super) headers: ObjectHeaders,
}

impl Header {
    /// The bytes that precede the object's data in its file.
    pub(super) fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("header serializes");
        let mut out = Vec::with_capacity(12 + json.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out
    }
}

/// Reads the header of an object file; leaves the file positioned at the object's bytes.
pub(super) fn read_info(f: &mut File, key: &str) -> Result<(ObjectInfo, Header)> {
    let corrupt = |why: &str| {
        Error::storage(
            "read",
            "",
            key,
            format!("local object file is corrupt: {why}"),
        )
    };
    let meta = f.metadata().ctx(|| format!("cannot stat object {key}"))?;
    let mut fixed = [0u8; 12];
    f.read_exact(&mut fixed)
        .map_err(|_| corrupt("short header"))?;
    if &fixed[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let len = u32::from_le_bytes(fixed[8..12].try_into().expect("4 bytes"));
    if len > MAX_HEADER || u64::from(len) + 12 > meta.len() {
        return Err(corrupt("bad header length"));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)
        .map_err(|_| corrupt("short header"))?;
    let header: Header = serde_json::from_slice(&buf).map_err(|_| corrupt("bad header"))?;
    let modified: Option<DateTime<Utc>> = meta.modified().ok().map(DateTime::<Utc>::from);
    let info = ObjectInfo {
        key: key.to_string(),
        size: meta.len() - 12 - u64::from(len),
        last_modified: modified,
        etag: None,
        metadata: Some(header.metadata.clone()),
        content_type: header.content_type.clone(),
        headers: header.headers.clone(),
        protection: Default::default(),
    };
    Ok((info, header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn header_round_trips_and_bad_files_are_corrupt() {
        let mut h = Header::default();
        h.metadata.insert("dg-x".into(), "y".into());
        h.content_type = Some("text/plain".into());
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&h.encode()).unwrap();
        f.write_all(b"data").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let (info, back) = read_info(&mut f, "k").unwrap();
        assert_eq!(info.size, 4);
        assert_eq!(back.metadata["dg-x"], "y");
        assert_eq!(info.content_type.as_deref(), Some("text/plain"));
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "data");

        // written without headers, as before they were recorded: still readable
        let old = br#"{"metadata":{"dg-x":"y"},"content_type":"text/plain"}"#;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(MAGIC).unwrap();
        f.write_all(&(old.len() as u32).to_le_bytes()).unwrap();
        f.write_all(old).unwrap();
        f.write_all(b"data").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let (info, back) = read_info(&mut f, "k").unwrap();
        assert_eq!((info.size, back.metadata["dg-x"].as_str()), (4, "y"));
        assert!(info.headers.is_empty());

        let mut bad = tempfile::tempfile().unwrap();
        bad.write_all(b"NOTMAGIC\0\0\0\0").unwrap();
        bad.seek(SeekFrom::Start(0)).unwrap();
        assert!(read_info(&mut bad, "k").is_err());
    }
}
