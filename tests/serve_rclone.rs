//! rclone (Debian's package) against `deltaglider serve`, over the local store and the S3
//! server: copy, sync, check, cat, move and delete, and a multipart upload, all stored as
//! deltas and read back byte-exact by rclone and by the `deltaglider` CLI.
#![cfg(feature = "serve")]

mod cli_support;
mod serve_support;

use std::path::Path;
use std::process::{Command, Output};

use cli_support::{Dg, support};
use serve_support::{KEY_ID, SECRET, Serve, client_bin, stored_keys};
use support::{edited, noise};

/// The rclone program, or `None` (after a loud line) without one; a failure when the
/// tests are required to run.
fn rclone() -> Option<&'static str> {
    if Command::new("rclone").arg("version").output().is_ok() {
        return Some("rclone");
    }
    let required = std::env::var("DG_REQUIRE_S3").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "DG_REQUIRE_S3 is set but there is no rclone (scripts/install-deps.sh)"
    );
    eprintln!("\n*** SKIPPED: no rclone (scripts/install-deps.sh) ***\n");
    None
}

/// rclone with a remote `dg:` on the endpoint (configured in the environment only).
fn run(serve: &Serve, home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("rclone");
    // Nothing of the test run's own S3 settings (its CA bundle, keys, endpoint).
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("RCLONE_") {
            cmd.env_remove(&var);
        }
    }
    cmd.args(args)
        .env("HOME", home)
        .env("RCLONE_CONFIG", home.join("rclone.conf"))
        .env("RCLONE_CONFIG_DG_TYPE", "s3")
        .env("RCLONE_CONFIG_DG_PROVIDER", "Other")
        .env("RCLONE_CONFIG_DG_ACCESS_KEY_ID", KEY_ID)
        .env("RCLONE_CONFIG_DG_SECRET_ACCESS_KEY", SECRET)
        .env("RCLONE_CONFIG_DG_ENDPOINT", &serve.endpoint)
        .env("RCLONE_CONFIG_DG_REGION", "us-east-1")
        .env("RCLONE_CONFIG_DG_FORCE_PATH_STYLE", "true")
        .output()
        .expect("run rclone")
}

fn ok(serve: &Serve, home: &Path, args: &[&str]) -> String {
    let out = run(serve, home, args);
    assert!(
        out.status.success(),
        "rclone {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rclone_copies_syncs_checks_and_deletes_through_serve() {
    let Some(bin) = client_bin() else { return };
    if rclone().is_none() {
        return;
    }
    for dg in Dg::all("serve-rclone") {
        let serve = Serve::start(&dg, &bin);
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let b = &dg.bucket;
        let remote = |key: &str| format!("dg:{b}/{key}");

        let v1 = noise(400_000, 71);
        let v2 = edited(&v1, 72);
        let v3 = edited(&v2, 73);
        let tree = dg.work().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("app-1.0.zip"), &v1).unwrap();
        std::fs::write(tree.join("app-1.1.zip"), &v2).unwrap();
        std::fs::write(tree.join("sub/notes.txt"), b"release notes\n").unwrap();
        let tree_s = tree.to_str().unwrap();

        ok(&serve, home, &["copy", tree_s, &remote("rel")]);
        let stored = stored_keys(&dg);
        assert!(
            stored.iter().any(|k| k == "rel/app-1.1.zip.delta"),
            "{stored:?}"
        );
        // rclone sees originals: names and sizes, never the reference or a .delta.
        let listed = ok(&serve, home, &["ls", &remote("rel")]);
        assert!(
            listed.contains(&format!("{} app-1.1.zip", v2.len())),
            "{listed}"
        );
        assert!(listed.contains("sub/notes.txt"), "{listed}");
        assert!(
            !listed.contains("reference.bin") && !listed.contains(".delta"),
            "{listed}"
        );
        // Byte for byte (hashes are not comparable: a delta's ETag is no MD5).
        ok(
            &serve,
            home,
            &["check", "--download", tree_s, &remote("rel")],
        );
        let cat = run(&serve, home, &["cat", &remote("rel/app-1.1.zip")]);
        assert!(cat.status.success() && cat.stdout == v2);

        // A second sync transfers nothing; a new file is all the next one sends.
        let sync = |what: &str| {
            let out = run(&serve, home, &["sync", "-v", tree_s, &remote("rel")]);
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "sync {what}: {log}");
            log
        };
        let log = sync("again");
        assert_eq!(log.matches(": Copied").count(), 0, "{log}");
        std::fs::write(tree.join("app-1.2.zip"), &v3).unwrap();
        let log = sync("with a new file");
        assert_eq!(log.matches(": Copied").count(), 1, "{log}");

        // What rclone stored, the CLI reads back; what the CLI stored, rclone reads.
        dg.ok(&["cp", &dg.url("rel/app-1.2.zip"), &dg.path("cli-1.2.zip")]);
        assert!(std::fs::read(dg.work().join("cli-1.2.zip")).unwrap() == v3);
        std::fs::write(dg.work().join("app-1.3.zip"), edited(&v3, 74)).unwrap();
        dg.ok(&["cp", &dg.path("app-1.3.zip"), &dg.url("rel/app-1.3.zip")]);
        let cat = run(&serve, home, &["cat", &remote("rel/app-1.3.zip")]);
        assert!(cat.status.success() && cat.stdout == edited(&v3, 74));

        // A multipart upload (5 MiB parts), stored as a delta of the earlier release.
        let big1 = noise(12 << 20, 75);
        let big2 = edited(&big1, 76);
        let big = dg.work().join("big");
        std::fs::create_dir_all(&big).unwrap();
        std::fs::write(big.join("image-1.zip"), &big1).unwrap();
        std::fs::write(big.join("image-2.zip"), &big2).unwrap();
        let multipart = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"];
        let mut args = vec!["copy", big.to_str().unwrap()];
        let dest = remote("big");
        args.push(&dest);
        args.extend_from_slice(&multipart);
        ok(&serve, home, &args);
        let stored = stored_keys(&dg);
        assert!(
            stored.iter().any(|k| k == "big/image-2.zip.delta"),
            "{stored:?}"
        );
        let cat = run(&serve, home, &["cat", &remote("big/image-2.zip")]);
        assert!(cat.status.success() && cat.stdout == big2);

        // moveto and delete: gone for every client.
        ok(
            &serve,
            home,
            &[
                "moveto",
                &remote("rel/app-1.0.zip"),
                &remote("old/app-1.0.zip"),
            ],
        );
        let cat = run(&serve, home, &["cat", &remote("old/app-1.0.zip")]);
        assert!(cat.status.success() && cat.stdout == v1);
        let ls = dg.ok(&["ls", &dg.url("rel/")]);
        assert!(!ls.contains("app-1.0.zip"), "{ls}");
        ok(&serve, home, &["delete", &remote("")]);
        let left = ok(&serve, home, &["ls", &remote("")]);
        assert!(left.trim().is_empty(), "{left}");
        assert!(
            dg.ok(&["ls", "--recursive", &dg.url("")]).trim().is_empty(),
            "the CLI sees nothing either"
        );

        assert!(serve.stop().success());
        eprintln!("[{}] rclone through serve: ok", dg.name());
    }
}
