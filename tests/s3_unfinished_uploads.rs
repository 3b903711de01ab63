//! Uploads in parts that do not finish, through the binary on the S3 server: a failed part
//! and an interrupted command abort their multipart upload before the process exits; a
//! process killed outright leaves one, which `purge` lists and aborts once it is old enough.
//! No object appears in any case.

mod cli_support;

use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cli_support::Dg;
use cli_support::support::write_file;
use deltaglider::storage::PendingUpload;

/// Above the 64 MiB multipart threshold: five parts of 16 MiB.
const BIG: usize = 70 << 20;

fn big_file(dg: &Dg) -> String {
    // Not a delta candidate: uploaded as it is, in parts.
    let data: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    write_file(&dg.work(), "big.bin", &data);
    dg.path("big.bin")
}

fn pending(dg: &Dg) -> Vec<PendingUpload> {
    let uploads = dg
        .store
        .pending_uploads()
        .expect("S3 has multipart uploads");
    dg.runtime
        .block_on(uploads.list_pending_uploads(&dg.bucket, ""))
        .unwrap()
}

/// Starts `cp` of the big file, held for good after its first part is stored, and returns
/// once the server lists its upload.
fn held_upload(dg: &Dg) -> Child {
    let src = big_file(dg);
    let mut child = dg
        .command(&["cp", &src, &dg.url("big.bin")])
        .env("FAILPOINTS", "s3::after_part_upload=return")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(dg).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("cp ended before its upload was listed: {status:?}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no multipart upload listed within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn wait(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running {within:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut s).unwrap();
    s
}

fn nothing_stored(dg: &Dg) {
    let listing = dg.ok(&["ls", "-r", &dg.url("")]);
    assert!(listing.trim().is_empty(), "no object appeared: {listing}");
}

#[test]
fn a_failed_part_aborts_the_upload() {
    let Some(dg) = Dg::s3("mpu-fail") else { return };
    let src = big_file(&dg);
    let out = dg.run_env(
        &["cp", &src, &dg.url("big.bin")],
        &[("FAILPOINTS", "s3::before_part_upload=return")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failpoint s3::before_part_upload"),
        "{stderr}"
    );
    assert_eq!(pending(&dg), [], "the upload was aborted");
    nothing_stored(&dg);
}

#[test]
fn an_interrupted_upload_is_aborted_before_the_process_exits() {
    let Some(dg) = Dg::s3("mpu-int") else { return };
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut child = held_upload(&dg);
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = wait(&mut child, Duration::from_secs(30));
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(128 + signal), "{stderr}");
        assert!(stderr.contains("nothing partial was stored"), "{stderr}");
        assert!(!stderr.contains("could not be aborted"), "{stderr}");
        assert_eq!(pending(&dg), [], "aborted before exit (signal {signal})");
        nothing_stored(&dg);
    }
}

#[test]
fn purge_aborts_the_upload_of_a_killed_process_once_it_is_old_enough() {
    let Some(dg) = Dg::s3("mpu-kill") else { return };
    let mut child = held_upload(&dg);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = pending(&dg);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].key, "big.bin");
    nothing_stored(&dg);

    // Begun seconds ago: it may be another writer's, still at work.
    let out = dg.ok(&["purge", &dg.url("")]);
    assert!(
        out.contains("0 unfinished uploads aborted, 1 kept"),
        "{out}"
    );
    assert_eq!(pending(&dg), left);

    let out = dg.ok(&["purge", "--uploads-older-than", "0", &dg.url("")]);
    assert!(
        out.contains(&format!(
            "abort: s3://{}/big.bin (unfinished multipart upload {}",
            dg.bucket, left[0].upload_id
        )),
        "{out}"
    );
    assert!(
        out.contains("1 unfinished uploads aborted, 0 kept"),
        "{out}"
    );
    assert_eq!(pending(&dg), []);

    let json = dg.ok(&["purge", "--json", "--uploads-older-than", "0", &dg.url("")]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["uploads_aborted"], serde_json::json!([]), "{json}");
    nothing_stored(&dg);
}

#[test]
fn rb_force_aborts_unfinished_uploads_with_the_objects() {
    let Some(dg) = Dg::s3("mpu-rb") else { return };
    let mut child = held_upload(&dg);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(pending(&dg).len(), 1);
    // What `rb --force` runs before it deletes the bucket (which the S3 server would delete
    // even with the upload left, its parts orphaned).
    let engine = deltaglider::testing::Engine::new(
        dg.store.clone(),
        std::sync::Arc::new(deltaglider::codec::NativeCodec::default()),
        std::sync::Arc::new(deltaglider::cache::StoreCache::private(None).unwrap()),
        deltaglider::testing::EngineSettings::default(),
    );
    dg.runtime
        .block_on(engine.delete_everything(&dg.bucket))
        .unwrap();
    assert_eq!(pending(&dg), []);
    dg.ok(&["rb", "--force", &format!("s3://{}", dg.bucket)]);
    let exists = dg.runtime.block_on(dg.store.bucket_exists(&dg.bucket));
    assert!(!exists.unwrap(), "the bucket is gone");
}
