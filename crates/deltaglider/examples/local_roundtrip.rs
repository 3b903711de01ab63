//! Store three versions of an artifact in the local store, read one back verified, and
//! print what was saved. Runs anywhere `xdelta3` is installed; no server needed.
//!
//!     cargo run --example local_roundtrip

use deltaglider::Client;
use deltaglider::PutRequestOptions;
use deltaglider::StatsMode;
use tokio::io::AsyncReadExt;

/// A stand-in for consecutive releases: the same bytes with a few edits each time.
fn release(version: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for k in 0..version as usize {
        bytes[100_000 * (k + 1)..100_000 * (k + 1) + 64].fill(version);
    }
    bytes
}

#[tokio::main]
async fn main() -> deltaglider::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let client = Client::builder()
        .endpoint_url(format!("file://{}", dir.path().display()))
        .build()
        .await?;
    client.create_bucket("releases").await?;

    for version in 1..=3u8 {
        let mut options = PutRequestOptions::default();
        options
            .user_metadata
            .insert("build".into(), format!("100{version}"));
        options.content_type = Some("application/zip".into());
        let key = format!("app/app-1.{version}.zip");
        let stored = client
            .put_object("releases", &key, release(version), &options)
            .await?;
        // The first upload's stored size includes the reference it created.
        let saved = 100.0 - 100.0 * stored.stored_size as f64 / stored.original_size as f64;
        println!(
            "{key}: {:?}, {} bytes stored for {} ({saved:.1}% saved)",
            stored.stored_as, stored.stored_size, stored.original_size
        );
    }

    let mut object = client.get_object("releases", "app/app-1.3.zip").await?;
    let mut bytes = Vec::new();
    object
        .body
        .read_to_end(&mut bytes)
        .await
        .expect("read the verified body");
    assert_eq!(bytes, release(3), "byte-exact");
    println!(
        "read back app-1.3.zip: {} bytes, sha256 {}, build {}, {}",
        bytes.len(),
        object.details.sha256.as_deref().unwrap_or("?"),
        object.details.user_metadata["build"],
        object.details.content_type.as_deref().unwrap_or("?")
    );

    let stats = client.stats("releases", "", StatsMode::Exact).await?;
    println!(
        "bucket: {} objects, {} bytes stored for {} ({:.1}% saved)",
        stats.objects, stats.stored_bytes, stats.original_bytes, stats.savings_percent
    );
    client.delete_prefix("releases", "app/").await?;
    client.delete_bucket("releases").await?;
    Ok(())
}
