//! `verify`: rebuild an object and check it against its recorded SHA-256, writing nothing.

use super::*;

pub(super) async fn verify(engine: &Engine, p: &Printer, args: VerifyArgs) -> Result<()> {
    let url = parse_s3(&args.target)?;
    let report = engine.verify(&url.bucket, &url.key).await?;
    if p.json {
        print_json(&report);
    }
    match (&report.expected_sha256, report.valid) {
        (Some(_), true) => p.line(format!("OK {url} sha256 {}", report.actual_sha256)),
        (None, _) => p.line(format!(
            "UNVERIFIED {url}: plain object without a recorded sha256 (sha256 {})",
            report.actual_sha256
        )),
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
