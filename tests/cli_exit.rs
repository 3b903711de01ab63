//! Every row of the exit-code table in docs/cli.md, through the binary: one error line and
//! the documented code.

mod cli_support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cli_support::support::{edited, noise, write_file};
use cli_support::{Dg, lines, pty, screen};

/// The command fails with `code` and one error line containing `needle`.
fn fails(dg: &Dg, code: i32, args: &[&str], needle: &str) {
    let (_, stderr) = dg.exits(code, args);
    let errors: Vec<_> = lines(&stderr);
    assert_eq!(
        errors.len(),
        1,
        "[{}] {args:?}: one line: {stderr}",
        dg.name()
    );
    assert!(
        errors[0].starts_with("deltaglider: error: ") && errors[0].contains(needle),
        "[{}] {args:?}: '{}' should mention '{needle}'",
        dg.name(),
        errors[0]
    );
}

/// A deltaspace with a reference and one delta: (reference key, delta key) as stored.
fn with_delta(dg: &Dg) -> (String, String) {
    let base = noise(300_000, 5);
    write_file(&dg.work(), "v1.zip", &base);
    write_file(&dg.work(), "v2.zip", &edited(&base, 9));
    dg.ok(&["cp", &dg.path("v1.zip"), &dg.url("rel/")]);
    let out = dg.ok(&["cp", &dg.path("v2.zip"), &dg.url("rel/")]);
    assert!(out.contains("saved"), "{out}");
    ("rel/reference.bin".into(), "rel/v2.zip.delta".into())
}

#[test]
fn bad_arguments_exit_2() {
    let dg = Dg::local();
    write_file(&dg.work(), "a.zip", b"a");
    std::fs::create_dir_all(dg.work().join("dir")).unwrap();
    let a = dg.path("a.zip");
    fails(
        &dg,
        2,
        &["cp", &a, &dg.path("b.zip")],
        "both are local paths",
    );
    fails(
        &dg,
        2,
        &["cp", "-r", &dg.path("dir"), &dg.path("x")],
        "both are local paths",
    );
    fails(
        &dg,
        2,
        &["mv", &a, &dg.path("b.zip")],
        "both are local paths",
    );
    fails(
        &dg,
        2,
        &["cp", &dg.path("dir"), &dg.url("")],
        "use --recursive",
    );
    fails(
        &dg,
        2,
        &["cp", &dg.url("p/"), &dg.path("")],
        "use --recursive",
    );
    fails(&dg, 2, &["rm", &dg.url("p/")], "use --recursive");
    fails(&dg, 2, &["cp", "-r", &a, &dg.url("")], "not a directory");
    fails(&dg, 2, &["cp", &a, "s3://Bad_Bucket/x"], "Bad_Bucket");
    fails(&dg, 2, &["cp", &a, &dg.url("p/x.delta")], "reserved");
    fails(&dg, 2, &["mb", &dg.url("key")], "names an object");
    for command in [
        vec!["cp", "-r", "--concurrency", "0"],
        vec!["sync", "--concurrency", "0"],
        vec!["migrate", "--concurrency", "0"],
    ] {
        let mut args = command.clone();
        let (src, dst) = (dg.path("dir"), dg.url("x/"));
        if command[0] == "migrate" {
            args.extend([dg.url("a/").leak() as &str, dst.as_str()]);
        } else {
            args.extend([src.as_str(), dst.as_str()]);
        }
        let (_, stderr) = dg.exits(2, &args);
        assert!(
            stderr.contains("--concurrency") && stderr.contains("at least 1"),
            "{stderr}"
        );
    }
    let (_, stderr) = dg.exits(2, &["ls", "--no-such-flag"]);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    for (endpoint, absolute) in [
        (
            "file://relative/store",
            format!("file://{}/relative/store", dg.work().display()),
        ),
        (
            "file://~/store",
            format!("file://{}/store", dg.dir.path().display()),
        ),
    ] {
        let out = dg
            .command(&["ls", "--endpoint-url", endpoint])
            .current_dir(dg.work())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{endpoint}: {stderr}");
        assert!(
            stderr.contains(&absolute),
            "{endpoint}: {stderr} should show {absolute}"
        );
        assert!(!dg.work().join("relative").exists(), "nothing created");
    }
}

#[test]
fn missing_things_exit_3_and_rm_of_a_missing_key_succeeds() {
    for dg in Dg::all("exit3") {
        let (reference, _) = with_delta(&dg);
        let out = dg.ok(&["rm", &dg.url("rel/none.zip")]);
        assert!(out.contains("did not exist"), "{out}");
        let json: serde_json::Value =
            serde_json::from_str(&dg.ok(&["rm", "--json", &dg.url("none.zip")])).unwrap();
        assert_eq!(json["deleted"], serde_json::json!([]));
        fails(
            &dg,
            3,
            &["rm", "--fail-if-missing", &dg.url("none.zip")],
            "none.zip",
        );
        fails(
            &dg,
            3,
            &["rm", "s3://dg-no-such-bucket-x/k"],
            "dg-no-such-bucket-x",
        );
        fails(
            &dg,
            3,
            &["cp", &dg.url("none.zip"), &dg.path("")],
            "none.zip",
        );
        fails(&dg, 3, &["verify", &dg.url("none.zip")], "none.zip");
        fails(
            &dg,
            3,
            &["ls", "s3://dg-no-such-bucket-x/"],
            "dg-no-such-bucket-x",
        );
        // A delta whose reference is gone: not found, not an integrity failure.
        dg.delete_stored(&reference);
        let out_path = dg.path("v2-back.zip");
        for args in [
            vec![
                "cp",
                "--no-cache",
                dg.url("rel/v2.zip").leak() as &str,
                out_path.as_str(),
            ],
            vec!["verify", "--no-cache", dg.url("rel/v2.zip").leak()],
        ] {
            fails(&dg, 3, &args, "reference.bin");
        }
        assert!(!dg.work().join("v2-back.zip").exists());
    }
}

#[test]
fn a_corrupt_delta_exits_4_under_cp_and_verify() {
    for dg in Dg::all("corrupt") {
        let (_, delta) = with_delta(&dg);
        let mut good = Vec::new();
        dg.tamper(&delta, |b| {
            good = b.clone();
            b
        });
        let flipped = {
            let mut v = good.clone();
            let at = v.len() - 8;
            v[at] ^= 0x55;
            v
        };
        let truncated = good[..good.len() / 2].to_vec();
        for (what, bytes) in [("flipped", flipped), ("truncated", truncated)] {
            dg.tamper(&delta, |_| bytes.clone());
            for codec in ["native", "xdelta3"] {
                let back = dg.path("back.zip");
                for args in [
                    vec![
                        "cp",
                        "--no-cache",
                        dg.url("rel/v2.zip").leak() as &str,
                        back.as_str(),
                    ],
                    vec!["verify", "--no-cache", dg.url("rel/v2.zip").leak()],
                ] {
                    let out = dg.run_env(&args, &[("DG_CODEC", codec)]);
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert_eq!(
                        out.status.code(),
                        Some(4),
                        "[{}] {what} {codec} {args:?}: {stderr}",
                        dg.name()
                    );
                    assert_eq!(lines(&stderr).len(), 1, "{stderr}");
                }
                assert!(
                    !dg.work().join("back.zip").exists(),
                    "nothing unverified written"
                );
            }
        }
    }
}

#[test]
fn write_errors_on_stdout_are_one_line_and_exit_1() {
    let dg = Dg::local();
    write_file(&dg.work(), "a.zip", b"a");
    dg.ok(&["cp", &dg.path("a.zip"), &dg.url("a.zip")]);
    for args in [
        vec!["ls", "s3://bkt"],
        vec!["ls", "--json", "s3://bkt"],
        vec!["ls"],
        vec!["--help"],
        vec!["--version"],
        vec!["completions", "bash"],
        vec!["stats", "bkt"],
        vec!["cp", "--dryrun", &dg.url("a.zip"), "/tmp/"],
        vec!["cache", "info"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = dg.command(&args).stdout(full).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(lines(&stderr).len(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write to standard output") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    // A reader that goes away ends the command quietly (SIGPIPE), without a panic.
    let mut child = dg
        .command(&["completions", "zsh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(stderr.is_empty(), "{stderr}");
    assert_ne!(status.code(), Some(101), "no panic");
}

#[test]
fn sigint_exits_130_and_leaves_no_progress_bar() {
    let dg = Dg::local();
    std::fs::create_dir_all(dg.work().join("src")).unwrap();
    for i in 0..3 {
        write_file(&dg.work(), &format!("src/f{i}.zip"), &noise(20_000, i));
    }
    let (master, slave) = pty();
    let mut child = dg
        .command(&["cp", "-r", &dg.path("src"), &dg.url("p/")])
        // Held right after the plan is shown, off the async threads.
        .env("FAILPOINTS", "transfer::planned=sleep(60000)")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(slave)
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 4096];
        // EIO once the child and every copy of the slave are gone.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("/3 files") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "no progress bar within 30 s: {:?}",
                    String::from_utf8_lossy(&seen)
                );
            }
        }
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 20 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(child);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    reader.join().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );
    let shown: Vec<String> = screen(&seen)
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        shown,
        ["deltaglider: error: interrupted; temporary files removed, nothing partial was stored"],
        "raw: {:?}",
        String::from_utf8_lossy(&seen)
    );
    let listing = dg.ok(&["ls", "-r", &dg.url("")]);
    assert!(listing.trim().is_empty(), "nothing stored: {listing}");
}

#[test]
fn the_screen_model_keeps_what_a_terminal_keeps() {
    assert_eq!(screen(b"abc\r\x1b[2Kdone\r\nnext"), ["done", "next"]);
    assert_eq!(screen(b"bar 1/3 files"), ["bar 1/3 files"]);
    assert_eq!(screen(b"one\r\ntwo\x1b[1A\r\x1b[2K"), ["", "two"]);
}

/// A copy onto itself may replace the metadata; a move onto itself is refused before
/// anything is deleted, for one object and for a tree.
#[test]
fn a_move_onto_itself_is_refused_and_deletes_nothing() {
    for dg in Dg::all("mv-self") {
        with_delta(&dg);
        let key = dg.url("rel/v2.zip");
        for args in [
            vec![
                "mv",
                key.as_str(),
                key.as_str(),
                "--metadata",
                "stage=final",
            ],
            vec!["mv", key.as_str(), key.as_str()],
        ] {
            let out = dg.run(&args);
            assert!(!out.status.success(), "[{}] {args:?}", dg.name());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("onto itself"),
                "[{}] {args:?}: {err}",
                dg.name()
            );
        }
        let tree = dg.url("rel/");
        let out = dg.run(&["mv", "-r", &tree, &tree, "--metadata", "stage=final"]);
        assert!(!out.status.success(), "[{}] mv -r onto itself", dg.name());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("onto itself"), "[{}] {err}", dg.name());
        let ls = dg.ok(&["ls", &tree]);
        assert!(
            ls.contains("v1.zip") && ls.contains("v2.zip"),
            "[{}] {ls}",
            dg.name()
        );
        dg.ok(&["cp", &key, &dg.path("back.zip")]);
        // A copy onto itself that replaces the metadata keeps the bytes.
        dg.ok(&["cp", &key, &key, "--metadata", "stage=final"]);
        let head = dg.ok(&["head", &key]);
        assert!(head.contains("stage"), "[{}] {head}", dg.name());
        dg.ok(&["cp", &key, &dg.path("again.zip")]);
        assert_eq!(
            std::fs::read(dg.work().join("back.zip")).unwrap(),
            std::fs::read(dg.work().join("again.zip")).unwrap()
        );
    }
}
