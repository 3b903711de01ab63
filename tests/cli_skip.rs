//! `cp -r`, `sync` and `mv -r` of a tree holding things that cannot be read: a broken link, a
//! FIFO, a socket, a link loop and an unreadable file are each skipped with one warning naming
//! them, everything else is transferred, and the exit code is 2 (as `aws s3`). Tests run as
//! root, where `chmod 000` does not stop a read: the unreadable file is made so by the
//! `transfer::scan-open` failpoint, which fails its open with "permission denied".

mod cli_support;

use std::os::unix::fs::symlink;

use cli_support::support::{noise, write_file};
use cli_support::{Dg, lines};

const UNREADABLE: (&str, &str) = ("FAILPOINTS", "transfer::scan-open=return(secret.zip)");

fn hostile_tree(dg: &Dg) -> std::os::unix::net::UnixListener {
    let src = dg.work().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    write_file(&src, "a.zip", &noise(50_000, 1));
    write_file(&src, "sub/b.txt", b"readable");
    write_file(&src, "secret.zip", b"cannot be read");
    symlink(src.join("nowhere"), src.join("broken")).unwrap();
    symlink(src.join("a.zip"), src.join("link.zip")).unwrap();
    symlink(&src, src.join("sub/loop")).unwrap();
    let fifo = std::ffi::CString::new(src.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap()
}

fn stored_keys(dg: &Dg, prefix: &str) -> Vec<String> {
    let out = dg.ok(&["ls", "-r", "--json", &dg.url(prefix)]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut keys: Vec<String> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o["key"]
                .as_str()
                .unwrap()
                .trim_start_matches(prefix)
                .to_string()
        })
        .collect();
    keys.sort();
    keys
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning: Skipping file "))
        .collect()
}

#[test]
fn unreadable_entries_are_skipped_with_a_warning_and_exit_2() {
    for dg in Dg::all("skip") {
        let _socket = hostile_tree(&dg);
        let src = dg.path("src");
        for (n, command) in ["cp", "sync"].iter().enumerate() {
            let prefix = format!("t{n}/");
            let mut args = vec![*command];
            if *command == "cp" {
                args.push("-r");
            }
            let dest = dg.url(&prefix);
            args.extend([src.as_str(), dest.as_str()]);
            let out = dg.run_env(&args, &[UNREADABLE]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "[{}] {args:?}: {stderr}",
                dg.name()
            );
            let warned = warnings(&stderr);
            for (name, why) in [
                ("broken", "File does not exist."),
                ("pipe", "FIFO, or socket."),
                ("sock", "FIFO, or socket."),
                ("secret.zip", "not readable"),
                ("sub/loop", "File system loop"),
            ] {
                let path = format!("{src}/{name}");
                let hits: Vec<_> = warned
                    .iter()
                    .filter(|l| l.contains(&format!("file {path}.")) && l.contains(why))
                    .collect();
                assert_eq!(
                    hits.len(),
                    1,
                    "[{}] {name} warned once: {stderr}",
                    dg.name()
                );
            }
            assert_eq!(warned.len(), 5, "[{}] {stderr}", dg.name());
            assert!(stderr.contains("5 skipped"), "{stderr}");
            assert_eq!(
                stored_keys(&dg, &prefix),
                ["a.zip", "link.zip", "sub/b.txt"],
                "[{}] {args:?}: the readable files were transferred",
                dg.name()
            );
        }
        // Without following links, links are left out silently, as aws s3 does.
        let dest = dg.url("nofollow/");
        let args = [
            "cp",
            "-r",
            "--no-follow-symlinks",
            src.as_str(),
            dest.as_str(),
        ];
        let out = dg.run_env(&args, &[UNREADABLE]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(
            warnings(&stderr).len(),
            3,
            "pipe, sock, secret.zip: {stderr}"
        );
        assert!(
            !stderr.contains("broken") && !stderr.contains("loop"),
            "{stderr}"
        );
        assert_eq!(stored_keys(&dg, "nofollow/"), ["a.zip", "sub/b.txt"]);
        // An excluded entry is not warned about; with JSON the skips are events too.
        let dest = dg.url("json/");
        let args = [
            "cp",
            "-r",
            "--json",
            "--exclude",
            "pipe",
            "--exclude",
            "sock",
            "--exclude",
            "secret.zip",
            "--exclude",
            "broken",
            "--exclude",
            "sub/loop",
            src.as_str(),
            dest.as_str(),
        ];
        let out = dg.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(warnings(&stderr).is_empty(), "{stderr}");
        let out = dg.run(&[
            "cp",
            "-r",
            "--json",
            src.as_str(),
            dg.url("json2/").as_str(),
        ]);
        assert_eq!(out.status.code(), Some(2));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let skipped = lines(&stdout)
            .into_iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["event"] == "skipped")
            .count();
        assert_eq!(skipped, 4, "broken, pipe, sock, loop: {stdout}");
    }
}

#[test]
fn a_skip_does_not_stop_mv_from_moving_the_rest() {
    let dg = Dg::local();
    let _socket = hostile_tree(&dg);
    let src = dg.path("src");
    let out = dg.run_env(&["mv", "-r", &src, &dg.url("m/")], &[UNREADABLE]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stored_keys(&dg, "m/"), ["a.zip", "link.zip", "sub/b.txt"]);
    let src = dg.work().join("src");
    assert!(!src.join("a.zip").exists() && !src.join("sub/b.txt").exists());
    assert!(src.join("secret.zip").exists(), "what was skipped stays");
}
