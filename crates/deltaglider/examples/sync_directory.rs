//! Sync a directory up to a prefix, change one file, sync again (only that file moves), and
//! sync back down into an empty directory. Local store; no server needed.
//!
//!     cargo run --example sync_directory

use deltaglider::Client;
use deltaglider::TransferOptions;

#[tokio::main]
async fn main() -> deltaglider::Result<()> {
    let work = tempfile::tempdir().expect("temporary directory");
    let (source, restored) = (work.path().join("source"), work.path().join("restored"));
    std::fs::create_dir_all(source.join("docs")).expect("create source tree");
    let base: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(40_503) >> 8) as u8)
        .collect();
    for i in 0..3u8 {
        let mut v = base.clone();
        v[5000 + i as usize] = i;
        std::fs::write(source.join(format!("build-{i}.zip")), v).expect("write release");
    }
    std::fs::write(source.join("docs/README.txt"), "hello").expect("write readme");

    let client = Client::builder()
        .endpoint_url(format!("file://{}", work.path().join("store").display()))
        .build()
        .await?;
    client.create_bucket("artifacts").await?;
    let mut sync = TransferOptions::default();
    sync.compare.always_copy = false;

    let first = client
        .upload_dir(&source, "artifacts", "ci/", &sync)
        .await?;
    println!(
        "first sync: {} files uploaded, {} bytes stored for {}",
        first.copied, first.stored_bytes, first.bytes
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(source.join("docs/README.txt"), "hello again").expect("edit readme");
    let second = client
        .upload_dir(&source, "artifacts", "ci/", &sync)
        .await?;
    println!(
        "second sync: {} uploaded, {} unchanged",
        second.copied, second.unchanged
    );
    assert_eq!(second.copied, 1);

    let down = client
        .download_dir("artifacts", "ci/", &restored, &sync)
        .await?;
    println!("restored {} files", down.copied);
    for name in [
        "build-0.zip",
        "build-1.zip",
        "build-2.zip",
        "docs/README.txt",
    ] {
        assert_eq!(
            std::fs::read(source.join(name)).unwrap(),
            std::fs::read(restored.join(name)).unwrap()
        );
    }
    println!("trees are identical");
    Ok(())
}
