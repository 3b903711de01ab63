//! The local store's on-disk object file (`DGLOBJ1\n`, u32 LE header length, JSON header,
//! data): whatever a file holds, head/get/list return errors, never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use deltaglider::storage::local::LocalStore;
use deltaglider::storage::{BucketAdmin, ListRequest, ObjectStore};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;

struct Fixture {
    rt: Runtime,
    store: LocalStore,
    object: PathBuf,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(dir.path()).expect("local store");
        rt.block_on(store.create_bucket("bkt"))
            .expect("create bucket");
        let object = dir.path().join("bkt").join("k.o");
        Fixture {
            rt,
            store,
            object,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    std::fs::write(&f.object, data).expect("write object file");
    f.rt.block_on(async {
        if let Ok(Some(info)) = f.store.head_object("bkt", "k").await {
            assert_eq!(info.key, "k");
            assert!(info.size <= data.len() as u64);
        }
        if let Ok(mut r) = f.store.get_object("bkt", "k").await {
            let mut body = Vec::new();
            if r.body.read_to_end(&mut body).await.is_ok() {
                assert_eq!(
                    body.len() as u64,
                    r.info.size,
                    "body length != reported size"
                );
                assert!(data.ends_with(&body), "body is not the tail of the file");
            }
        }
        let _ = f.store.list_objects("bkt", &ListRequest::default()).await;
    });
});
