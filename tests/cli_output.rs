//! What the binary prints: `--json` is JSON Lines for every command, keys with control
//! characters are escaped in text and exact in JSON, and the cosmetic promises of
//! docs/cli.md (no `-0.0%`, readable `cache info`, colours only for a terminal without
//! `NO_COLOR`, helpful `rb` and `analyze` messages).

mod cli_support;

use std::io::Read;
use std::process::Stdio;

use cli_support::support::{edited, noise, write_file};
use cli_support::{Dg, lines, pty};

/// Every line of stdout is one JSON document, and there is at least one.
fn json_lines(dg: &Dg, args: &[&str]) -> Vec<serde_json::Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = dg.ok(&full);
    let docs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("[{}] {args:?}: not JSON ({e}): {l:?}\n{out}", dg.name())
            })
        })
        .collect();
    assert!(!docs.is_empty(), "[{}] {args:?} printed no JSON", dg.name());
    docs
}

#[test]
fn every_commands_json_output_is_json_lines() {
    for dg in Dg::all("json") {
        let base = noise(200_000, 3);
        std::fs::create_dir_all(dg.work().join("src/sub")).unwrap();
        write_file(&dg.work(), "src/a.zip", &base);
        write_file(&dg.work(), "src/sub/b.zip", &edited(&base, 4));
        let (a, src, dl) = (dg.path("src/a.zip"), dg.path("src"), dg.path("dl"));
        let u = |k: &str| dg.url(k);
        let bucket = dg.bucket.clone();
        let other = format!("{}-2", dg.bucket);
        let cases: Vec<Vec<String>> = vec![
            vec!["cp".into(), a.clone(), u("one/")],
            vec!["cp".into(), a.clone(), u("one/again.zip")],
            vec!["cp".into(), "--dryrun".into(), a.clone(), u("one/")],
            vec!["cp".into(), u("one/a.zip"), dg.path("back.zip")],
            vec![
                "cp".into(),
                "--dryrun".into(),
                u("one/a.zip"),
                dg.path("back.zip"),
            ],
            vec!["cp".into(), u("one/a.zip"), u("copy/")],
            vec!["cp".into(), "-r".into(), src.clone(), u("tree/")],
            vec![
                "cp".into(),
                "-r".into(),
                "--dryrun".into(),
                src.clone(),
                u("tree/"),
            ],
            vec!["cp".into(), "-r".into(), u("tree/"), dl.clone()],
            vec!["cp".into(), "-r".into(), u("tree/"), u("tree2/")],
            vec!["sync".into(), src.clone(), u("tree/")],
            vec!["sync".into(), "--delete".into(), u("tree/"), dl.clone()],
            vec!["ls".into()],
            vec!["ls".into(), u("")],
            vec!["ls".into(), "-r".into(), "--summarize".into(), u("")],
            vec!["verify".into(), u("one/a.zip")],
            vec!["stats".into(), bucket.clone()],
            vec![
                "stats".into(),
                "--detailed".into(),
                "--sampled".into(),
                bucket.clone(),
            ],
            vec!["presign".into(), u("one/a.zip")],
            vec!["purge".into(), bucket.clone()],
            vec!["analyze".into(), src.clone()],
            vec!["analyze".into(), u("tree/")],
            vec!["migrate".into(), "--dryrun".into(), u("tree/"), u("mig/")],
            vec!["migrate".into(), "--yes".into(), u("tree/"), u("mig/")],
            vec!["migrate".into(), "--yes".into(), u("tree/"), u("mig/")],
            vec!["mv".into(), dg.path("back.zip"), u("moved/")],
            vec!["mv".into(), "-r".into(), u("tree2/"), u("tree3/")],
            vec!["rm".into(), u("one/again.zip")],
            vec!["rm".into(), u("one/missing.zip")],
            vec!["rm".into(), "--dryrun".into(), u("one/a.zip")],
            vec!["rm".into(), "-r".into(), "--dryrun".into(), u("tree/")],
            vec!["rm".into(), "-r".into(), u("tree3/")],
            vec!["mb".into(), format!("s3://{other}")],
            vec!["rb".into(), format!("s3://{other}")],
            vec!["cache".into(), "info".into()],
            vec!["cache".into(), "verify".into()],
            vec!["cache".into(), "clear".into()],
            vec!["cache".into(), "migrate".into()],
        ];
        for case in &cases {
            let args: Vec<&str> = case.iter().map(String::as_str).collect();
            if args[0] == "presign" && dg.name() == "local" {
                continue; // the local store serves no HTTP
            }
            let docs = json_lines(&dg, &args);
            let multi =
                matches!(args[0], "sync" | "migrate") || (args.contains(&"-r") && args[0] != "ls");
            if multi {
                let last = docs.last().unwrap();
                assert!(
                    last.get("summary").is_some(),
                    "[{}] {args:?}: ends with a summary: {last}",
                    dg.name()
                );
            } else if args[0] != "migrate" {
                assert_eq!(docs.len(), 1, "[{}] {args:?}: one document", dg.name());
            }
        }
    }
}

/// A key that would drive a terminal: ESC sequence, CR, LF and BEL.
const HOSTILE: &str = "k\x1b[31mred\r\nline2\x07.bin";
const SHOWN: &str = "k\\x1b[31mred\\x0d\\x0aline2\\x07.bin";

#[test]
fn control_characters_in_keys_are_escaped_in_text_and_exact_in_json() {
    let dg = Dg::local();
    write_file(&dg.work(), "f.bin", b"payload");
    let key = format!("p/{HOSTILE}");
    let out = dg.ok(&["cp", &dg.path("f.bin"), &dg.url(&key)]);
    assert!(out.contains(SHOWN) && !out.contains('\x1b'), "{out:?}");
    for args in [
        vec!["ls", "s3://bkt/p/"],
        vec!["ls", "-r", "-l", "s3://bkt"],
    ] {
        let out = dg.ok(&args);
        assert!(out.contains(SHOWN), "{args:?}: {out:?}");
        assert!(!out.contains(['\x1b', '\r', '\x07']), "{args:?}: {out:?}");
        assert_eq!(out.lines().count(), 1, "one line per key: {out:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&dg.ok(&["ls", "--json", "s3://bkt/p/"])).unwrap();
    assert_eq!(json["objects"][0]["key"], key, "JSON keeps the exact key");
    let out = dg.ok(&["cp", "-r", "s3://bkt/p/", &dg.path("dl")]);
    assert!(out.contains(SHOWN) && !out.contains('\x1b'), "{out:?}");
    assert_eq!(
        std::fs::read(dg.work().join("dl").join(HOSTILE)).unwrap(),
        b"payload"
    );
    // Errors name the key escaped too.
    let missing = format!("s3://bkt/none{HOSTILE}");
    let (_, stderr) = dg.exits(3, &["verify", &missing]);
    assert!(
        stderr.contains(SHOWN) && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert_eq!(lines(&stderr).len(), 1, "{stderr:?}");
    // Local names too: a sync of the directory back up names the file escaped.
    let out = dg.ok(&["sync", &dg.path("dl"), "s3://bkt/q/"]);
    assert!(out.contains(SHOWN) && !out.contains('\x1b'), "{out:?}");
    let out = dg.ok(&["rm", &dg.url(&key)]);
    assert!(out.contains(SHOWN) && !out.contains('\x1b'), "{out:?}");
    let (_, stderr) = dg.exits(0, &["rm", "-r", "s3://bkt/q/"]);
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

#[test]
fn savings_never_show_minus_zero() {
    let dg = Dg::local();
    // One file in a deltaspace: its reference plus a tiny delta, a few bytes more than it.
    write_file(&dg.work(), "app-1.zip", &noise(600_000, 8));
    dg.ok(&["cp", &dg.path("app-1.zip"), "s3://bkt/rel/"]);
    for args in [
        vec!["ls", "-r", "--summarize", "s3://bkt"],
        vec!["ls", "-r", "-l", "s3://bkt"],
        vec!["stats", "bkt"],
        vec!["stats", "--detailed", "bkt"],
    ] {
        let out = dg.ok(&args);
        assert!(!out.contains("-0.0"), "{args:?}: {out}");
    }
}

#[test]
fn cache_info_is_for_people() {
    let dg = Dg::local();
    let cache = dg.dir.path().join("cache");
    let out = dg.ok(&["cache", "info", "--cache-dir", cache.to_str().unwrap()]);
    assert!(
        !out.contains('{') && !out.contains("path:"),
        "no Rust debug output: {out}"
    );
    let ttl = out.lines().find(|l| l.starts_with("ttl:")).expect(&out);
    assert!(
        ttl.contains("days") || ttl.contains('h'),
        "humanized: {ttl}"
    );
    assert!(out.contains("signing key:"), "{out}");
}

/// Whether `text` sets a colour or style (SGR: ESC [ ... m); the progress spinner's line
/// erasing is not colour.
fn has_colour(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|seq| {
        seq.strip_prefix('[').is_some_and(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|i| rest[i..].starts_with('m'))
        })
    })
}

#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    let dg = Dg::local();
    let base = noise(100_000, 2);
    write_file(&dg.work(), "v1.zip", &base);
    write_file(&dg.work(), "v2.zip", &edited(&base, 3));
    dg.ok(&["cp", &dg.path("v1.zip"), "s3://bkt/"]);
    dg.ok(&["cp", &dg.path("v2.zip"), "s3://bkt/"]);
    let back = dg.path("back.zip");
    // A download with a cache miss logs at debug level.
    let logged = ["-vv", "cp", "s3://bkt/v2.zip", back.as_str()];
    let out = dg.run(&logged);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "debug logs: {stderr}");
    assert!(!has_colour(&stderr), "piped: no colour: {stderr:?}");
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let (mut master, slave) = pty();
        let mut cmd = dg.command(&logged);
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(slave).spawn().unwrap();
        drop(cmd);
        let status = child.wait().unwrap();
        assert!(status.success());
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("DEBUG"), "{text:?}");
        assert_eq!(
            has_colour(&text),
            coloured,
            "NO_COLOR={no_color:?}: {text:?}"
        );
    }
}

#[test]
fn messages_say_what_to_do() {
    let dg = Dg::local();
    write_file(&dg.work(), "a.zip", b"a");
    dg.ok(&["cp", &dg.path("a.zip"), "s3://bkt/a.zip"]);
    let (_, stderr) = dg.exits(1, &["rb", "s3://bkt"]);
    assert!(stderr.contains("--force"), "{stderr}");
    let missing = dg.path("nothing-here");
    let (_, stderr) = dg.exits(1, &["analyze", &missing]);
    assert!(
        stderr.contains(&missing) && !stderr.contains("not a directory: not a directory"),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn help_shows_examples_and_each_commands_own_options_first() {
    let dg = Dg::local();
    let top = dg.ok(&["--help"]);
    assert!(top.contains("Examples:\n  deltaglider"), "{top}");
    let cp = dg.ok(&["cp", "--help"]);
    let own = cp.find("--recursive").expect(&cp);
    let global = cp.find("Global options:").expect(&cp);
    let cache = cp.find("Cache options:").expect(&cp);
    assert!(
        own < global && own < cache,
        "cp's own options come first: {cp}"
    );
    assert!(cp[cache..].contains("--cache-dir") && !cp[..cache].contains("--cache-dir"));
    assert!(cp.contains("--follow-symlinks") && cp.contains("--no-follow-symlinks"));
}
