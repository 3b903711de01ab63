//! The binary as a user runs it, on the local store: output, AWS path semantics, and one
//! clear error line with a non-zero exit for every kind of bad input.

mod support;

use std::path::Path;
use std::process::Output;

use support::{noise, run_dg, write_file};

struct Env {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("file://{}", dir.path().join("store").display());
        let env = Env { dir, endpoint };
        env.ok(&["mb", "s3://bkt"]);
        env
    }
    fn run(&self, args: &[&str]) -> Output {
        run_dg(
            args,
            &[
                ("DG_ENDPOINT_URL", &self.endpoint),
                ("TMPDIR", self.dir.path().to_str().unwrap()),
            ],
        )
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// Runs a command that must fail with one clear line naming `needle`.
    fn fails(&self, args: &[&str], needle: &str, code: i32) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?} should print one error line, got: {stderr}"
        );
        assert!(lines[0].starts_with("deltaglider: error: "), "{stderr}");
        assert!(
            lines[0].contains(needle),
            "{args:?}: '{}' should mention '{needle}'",
            lines[0]
        );
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn no_temp_files_in(dir: &Path) {
    let stray: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dgtmp") || n.starts_with("deltaglider-"))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn upload_download_list_verify_remove() {
    let env = Env::new();
    let v1 = noise(500_000, 1);
    let mut v2 = v1.clone();
    v2[1000..1100].fill(7);
    write_file(env.dir.path(), "app-1.zip", &v1);
    write_file(env.dir.path(), "app-2.zip", &v2);

    let out = env.ok(&["cp", &env.path("app-1.zip"), "s3://bkt/rel/"]);
    assert!(
        out.contains("s3://bkt/rel/app-1.zip") && out.contains("new reference"),
        "{out}"
    );
    let out = env.ok(&["cp", &env.path("app-2.zip"), "s3://bkt/rel/renamed.zip"]);
    assert!(
        out.contains("s3://bkt/rel/renamed.zip") && out.contains("saved"),
        "{out}"
    );

    let ls = env.ok(&["ls", "s3://bkt/rel/"]);
    assert!(
        ls.contains(" app-1.zip") && ls.contains(" renamed.zip"),
        "{ls}"
    );
    assert!(
        !ls.contains("reference.bin") && !ls.contains(".delta"),
        "{ls}"
    );
    assert!(
        ls.contains(&v2.len().to_string()),
        "original size shown: {ls}"
    );
    assert!(env.ok(&["ls", "s3://bkt"]).contains("PRE rel/"));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["ls", "--json", "-r", "s3://bkt"])).unwrap();
    assert_eq!(json["total_objects"], 2);
    assert!(
        env.ok(&["ls", "-r", "-h", "--summarize", "s3://bkt"])
            .contains("Total Objects: 2")
    );
    assert!(env.ok(&["ls"]).contains("bkt"));

    std::fs::create_dir(env.path("out")).unwrap();
    env.ok(&[
        "cp",
        "s3://bkt/rel/renamed.zip",
        &format!("{}/", env.path("out")),
    ]);
    assert_eq!(
        std::fs::read(env.dir.path().join("out/renamed.zip")).unwrap(),
        v2
    );
    env.ok(&[
        "cp",
        "s3://bkt/rel/app-1.zip",
        &env.path("out/explicit.bin"),
    ]);
    assert_eq!(
        std::fs::read(env.dir.path().join("out/explicit.bin")).unwrap(),
        v1
    );

    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["verify", "--json", "s3://bkt/rel/renamed.zip"])).unwrap();
    assert_eq!(v["valid"], true);

    env.ok(&["cp", "s3://bkt/rel/app-1.zip", "s3://bkt/copy/"]);
    env.ok(&["cp", "s3://bkt/copy/app-1.zip", &env.path("out/copied.zip")]);
    assert_eq!(
        std::fs::read(env.dir.path().join("out/copied.zip")).unwrap(),
        v1
    );

    env.ok(&["rm", "s3://bkt/rel/app-1.zip"]);
    let out = env.ok(&["rm", "s3://bkt/rel/renamed.zip"]);
    assert!(out.contains("reference no longer used"), "{out}");
    env.ok(&["rm", "s3://bkt/copy/app-1.zip"]);
    env.ok(&["rb", "s3://bkt"]);
    no_temp_files_in(env.dir.path());
}

#[test]
fn bad_input_gives_one_clear_line_and_a_non_zero_exit() {
    let env = Env::new();
    write_file(env.dir.path(), "a.zip", &noise(10_000, 2));
    write_file(env.dir.path(), "reference.bin", b"x");
    let a = env.path("a.zip");
    env.fails(
        &["cp", &env.path("missing.zip"), "s3://bkt/"],
        "missing.zip",
        1,
    );
    env.fails(&["cp", &a, "s3:/bkt/x"], "s3:/bkt/x", 2);
    env.fails(&["cp", &a, "s3://Bad_Bucket/x"], "Bad_Bucket", 2);
    env.fails(&["cp", &a, "s3://nobucket/x.zip"], "nobucket", 3);
    env.fails(
        &["cp", "s3://bkt/none.zip", &env.path("none.zip")],
        "s3://bkt/none.zip",
        3,
    );
    env.fails(
        &["cp", "s3://nobucket/none.zip", &env.path("none.zip")],
        "nobucket",
        3,
    );
    env.fails(
        &["cp", &env.path("reference.bin"), "s3://bkt/p/"],
        "reserved",
        2,
    );
    env.fails(&["cp", &a, "s3://bkt/p/a.zip.delta"], "reserved", 2);
    env.fails(&["ls", "s3://nobucket/"], "nobucket", 3);
    env.fails(
        &["rm", "--fail-if-missing", "s3://bkt/none.zip"],
        "none.zip",
        3,
    );
    env.fails(&["verify", "s3://bkt/none.zip"], "none.zip", 3);
    env.fails(&["mb", "s3://bkt"], "already exists", 1);
    env.fails(
        &["cp", &a, "s3://bkt/", "--max-ratio", "7"],
        "--max-ratio",
        2,
    );
    env.fails(
        &["cp", &a, "s3://bkt/", "--endpoint-url", "ftp://x"],
        "ftp://x",
        2,
    );
    env.fails(&["cp", &a, &env.path("b.zip")], "s3:// URL", 2);
    assert!(!env.dir.path().join("none.zip").exists());

    env.ok(&["cp", &a, "s3://bkt/x.zip"]);
    env.fails(&["rb", "s3://bkt"], "not empty", 1);
    let out = env.run(&["ls", "s3://bkt", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    no_temp_files_in(env.dir.path());
}

#[test]
fn missing_xdelta3_says_how_to_install_it() {
    let env = Env::new();
    let a = write_file(env.dir.path(), "a.zip", &noise(10_000, 3));
    let out = run_dg(
        &["cp", a.to_str().unwrap(), "s3://bkt/"],
        &[
            ("DG_ENDPOINT_URL", &env.endpoint),
            ("DG_CODEC", "xdelta3"),
            ("DG_XDELTA3", "/nonexistent/xdelta3"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("apt-get install xdelta3"), "{stderr}");
    let listing = run_dg(
        &["ls", "-r", "--json", "s3://bkt"],
        &[("DG_ENDPOINT_URL", &env.endpoint)],
    );
    let json: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(json["total_objects"], 0, "nothing half-written");
    let store = std::fs::read_dir(env.dir.path().join("store/bkt"))
        .unwrap()
        .count();
    assert_eq!(store, 0, "no reference left behind");
}

#[test]
fn unreachable_server_and_missing_credentials_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &str)], &str); 2] = [
        (
            &[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")],
            "Connection refused",
        ),
        (
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_PROFILE", ""),
            ],
            "credentials",
        ),
    ];
    for (env, needle) in cases {
        let mut envs = vec![
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("HOME", dir.path().to_str().unwrap()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        envs.extend_from_slice(env);
        let out = run_dg(&["ls", "s3://some-bucket/"], &envs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
}

#[test]
fn native_codec_is_selectable_and_interoperates_with_xdelta3() {
    let env = Env::new();
    let v1 = noise(400_000, 7);
    let mut v2 = v1.clone();
    v2[200_000..200_100].fill(1);
    write_file(env.dir.path(), "n1.zip", &v1);
    write_file(env.dir.path(), "n2.zip", &v2);
    let with = |codec: &str, args: &[&str]| {
        let out = run_dg(
            args,
            &[("DG_ENDPOINT_URL", &env.endpoint), ("DG_CODEC", codec)],
        );
        assert!(
            out.status.success(),
            "{codec} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    with("native", &["cp", &env.path("n1.zip"), "s3://bkt/n/"]);
    let out = with("native", &["cp", &env.path("n2.zip"), "s3://bkt/n/"]);
    assert!(out.contains("saved"), "{out}");
    // Written by the native encoder, read by the xdelta3 program, and the other way round.
    with("xdelta3", &["cp", "s3://bkt/n/n2.zip", &env.path("x2.zip")]);
    assert_eq!(std::fs::read(env.dir.path().join("x2.zip")).unwrap(), v2);
    with(
        "xdelta3",
        &["cp", &env.path("n2.zip"), "s3://bkt/n/again.zip"],
    );
    with(
        "native",
        &["cp", "s3://bkt/n/again.zip", &env.path("a2.zip")],
    );
    assert_eq!(std::fs::read(env.dir.path().join("a2.zip")).unwrap(), v2);
    let out = run_dg(
        &["ls", "s3://bkt"],
        &[("DG_ENDPOINT_URL", &env.endpoint), ("DG_CODEC", "zstd")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DG_CODEC"));
}
