//! Helpers for the unit tests of the directory store: a store with a hashing cache on top
//! (so tests go through the same checked paths as the engine), filling and reading entries.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use super::{DirStore, DirStoreOptions};
use crate::cache::store::StoreCache;
use crate::hashing::sha256_hex;

pub(super) fn store(dir: &Path, opts: DirStoreOptions) -> (DirStore, StoreCache) {
    let s = DirStore::open(dir, opts).unwrap();
    let c = StoreCache::new(Arc::new(s.clone()), None, "persistent", true);
    (s, c)
}

pub(super) fn fill(c: &StoreCache, bytes: &[u8]) -> String {
    let sha = sha256_hex(bytes);
    let mut w = c.writer(&sha).unwrap();
    w.write_all(bytes).unwrap();
    w.commit("test").unwrap();
    sha
}

pub(super) fn read(mut f: File) -> Vec<u8> {
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}
