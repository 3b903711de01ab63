//! `verify`: rebuild an object and check it against its recorded SHA-256, writing nothing.

use super::*;

pub(super) async fn verify(client: &Client, p: &Printer, args: VerifyArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let report = client.verify_object(&url.bucket, &url.key).await?;
    p.show(&Doc {
        json: &report,
        text: |out: &dyn Text| match (&report.expected_sha256, report.valid) {
            (Some(_), true) => out.line(&format!("OK {url} sha256 {}", report.actual_sha256)),
            (None, _) => out.line(&format!(
                "UNVERIFIED {url}: plain object without a recorded sha256 (sha256 {})",
                report.actual_sha256
            )),
            // A mismatch is the command's error, below.
            (Some(_), false) => {}
        },
    });
    match (&report.expected_sha256, report.valid) {
        (Some(_), true) | (None, _) => {}
        (Some(expected), false) => {
            return Err(deltaglider::Error::IntegrityMismatch {
                what: url.to_string(),
                expected: expected.clone(),
                actual: report.actual_sha256,
            }
            .into());
        }
    }
    Ok(())
}
