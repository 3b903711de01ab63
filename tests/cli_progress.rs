//! The progress display (docs/cli.md, "Progress"): bytes, throughput and ETA of each phase
//! on a terminal, nothing when stderr is not one or output is not for people, no frame left
//! after Ctrl-C, log lines never drawn over; and `mv` keeps a source that changed while it
//! was uploaded.

mod cli_support;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use cli_support::support::{edited, noise, write_file};
use cli_support::{Dg, pty, screen};

/// Starts `args` with stderr on a pseudo-terminal; what it draws arrives on the receiver.
fn on_terminal(dg: &Dg, args: &[&str], failpoints: &str) -> (Child, Receiver<Vec<u8>>) {
    let (master, slave) = pty();
    let child = dg
        .command(args)
        .env("FAILPOINTS", failpoints)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(slave)
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 4096];
        // EIO once the child and every copy of the slave are gone.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads what is drawn until it contains every one of `needles`.
fn wait_for(child: &mut Child, rx: &Receiver<Vec<u8>>, needles: &[&str]) -> Vec<u8> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !needles
        .iter()
        .all(|n| String::from_utf8_lossy(&seen).contains(n))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{needles:?} not drawn within 30 s: {:?}",
                    String::from_utf8_lossy(&seen)
                );
            }
        }
    }
    seen
}

/// Interrupts the child; returns its exit code and what the terminal shows at the end.
fn interrupt(mut child: Child, rx: Receiver<Vec<u8>>, mut seen: Vec<u8>) -> (i32, Vec<String>) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    let shown = screen(&seen)
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    (status.code().unwrap_or(-1), shown)
}

const INTERRUPTED: &str =
    "deltaglider: error: interrupted; temporary files removed, nothing partial was stored";

#[test]
fn one_big_file_shows_its_phase_bytes_and_leaves_no_frame_on_ctrl_c() {
    let dg = Dg::local();
    write_file(&dg.work(), "big.zip", &noise(3 << 20, 1));
    let (mut child, rx) = on_terminal(
        &dg,
        &["cp", &dg.path("big.zip"), &dg.url("rel/")],
        // Held after the first MiB is hashed.
        "put::snapshot_first_chunk=sleep(60000)",
    );
    let seen = wait_for(
        &mut child,
        &rx,
        &["hashing big.zip", "1.00 MiB/3.00 MiB", "ETA"],
    );
    let (code, shown) = interrupt(child, rx, seen);
    assert_eq!((code, shown), (130, vec![INTERRUPTED.to_string()]));
}

#[test]
fn a_tree_shows_bytes_of_all_files_and_the_phase_of_each() {
    let dg = Dg::local();
    std::fs::create_dir_all(dg.work().join("src")).unwrap();
    for i in 0..3 {
        write_file(&dg.work(), &format!("src/f{i}.zip"), &noise(2 << 20, i));
    }
    let (mut child, rx) = on_terminal(
        &dg,
        &[
            "cp",
            "-r",
            "--concurrency",
            "1",
            &dg.path("src"),
            &dg.url("p/"),
        ],
        "put::snapshot_first_chunk=sleep(60000)",
    );
    // A fifth of the first file's share is credited once it is hashed; its first MiB is half.
    let seen = wait_for(
        &mut child,
        &rx,
        &["/6.00 MiB", "0/3 files, hashing f0.zip", "ETA"],
    );
    let (code, shown) = interrupt(child, rx, seen);
    assert_eq!((code, shown), (130, vec![INTERRUPTED.to_string()]));
}

#[test]
fn uploading_is_shown_too() {
    let dg = Dg::local();
    let base = noise(1 << 20, 7);
    write_file(&dg.work(), "v1.zip", &base);
    write_file(&dg.work(), "v2.zip", &edited(&base, 5));
    dg.ok(&["cp", &dg.path("v1.zip"), &dg.url("rel/")]);
    // Held once the delta is sent (hashing and encoding a MiB are over before the first
    // frame may be drawn; the unit tests of src/cli/progress.rs cover their display).
    let (mut child, rx) = on_terminal(
        &dg,
        &["cp", &dg.path("v2.zip"), &dg.url("rel/")],
        "put::after_delta_write=sleep(60000)",
    );
    let seen = wait_for(&mut child, &rx, &["uploading v2.zip", "ETA"]);
    let (code, shown) = interrupt(child, rx, seen);
    assert_eq!((code, shown), (130, vec![INTERRUPTED.to_string()]));
}

/// Every byte the command wrote to a terminal stderr, after it ran to the end.
fn drawn(dg: &Dg, args: &[&str]) -> String {
    let (mut child, rx) = on_terminal(dg, args, "");
    assert!(child.wait().unwrap().success(), "{args:?}");
    let mut seen = Vec::new();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn nothing_is_drawn_off_a_terminal_or_when_asked_not_to() {
    let dg = Dg::local();
    std::fs::create_dir_all(dg.work().join("src")).unwrap();
    write_file(&dg.work(), "src/a.zip", &noise(1 << 20, 3));
    write_file(&dg.work(), "one.zip", &noise(1 << 20, 4));
    let (src, one) = (dg.path("src"), dg.path("one.zip"));
    // Piped stderr: only the summary line, no frame, no escape sequence, no carriage return.
    let out = dg.run(&["cp", "-r", &src, &dg.url("t/")]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert!(
        !stderr.contains("hashing") && !stderr.contains("ETA"),
        "{stderr:?}"
    );
    let out = dg.run(&["cp", &one, &dg.url("u/")]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    // A terminal, but the flags say no.
    for flags in [
        vec!["--no-progress"],
        vec!["--only-show-errors"],
        vec!["--quiet"],
        vec!["--json"],
    ] {
        for (i, target) in [src.as_str(), one.as_str()].into_iter().enumerate() {
            let mut args = flags.clone();
            args.push("cp");
            if i == 0 {
                args.push("-r");
            }
            let key = dg.url(&format!("n{i}/"));
            args.extend([target, key.as_str()]);
            // The terminal turns each LF into CR LF; a bar would rewrite its line with CR.
            let text = drawn(&dg, &args).replace("\r\n", "\n");
            assert!(
                !text.contains("ETA") && !text.contains("hashing") && !text.contains('\r'),
                "{args:?}: {text:?}"
            );
        }
    }
}

#[test]
fn log_lines_are_never_drawn_over_by_the_bar() {
    let dg = Dg::local();
    let base = noise(2 << 20, 9);
    write_file(&dg.work(), "v1.zip", &base);
    write_file(&dg.work(), "v2.zip", &edited(&base, 5));
    dg.ok(&["cp", &dg.path("v1.zip"), &dg.url("rel/")]);
    let text = drawn(&dg, &["-vv", "cp", &dg.path("v2.zip"), &dg.url("rel/")]);
    let rows = screen(text.as_bytes());
    let logs: Vec<&String> = rows.iter().filter(|r| r.contains("DEBUG")).collect();
    assert!(!logs.is_empty(), "debug logs expected: {text:?}");
    for row in &rows {
        assert!(
            !(row.contains("ETA") || row.contains("B/s")),
            "a bar frame is left on screen: {row:?} in {rows:?}"
        );
    }
    for row in logs {
        // The timestamp first: not after a bar frame on the same line.
        assert!(
            row.starts_with("20"),
            "a log line starts clean: {row:?} in {rows:?}"
        );
    }
}

#[test]
fn mv_keeps_a_source_that_changed_while_it_was_uploaded() {
    let dg = Dg::local();
    write_file(&dg.work(), "app.zip", &noise(3 << 20, 5));
    let before = std::fs::read(dg.work().join("app.zip")).unwrap();
    // `return`: the source is appended to right after its first MiB is read.
    let changes = [("FAILPOINTS", "put::snapshot_first_chunk=return")];
    let out = dg.run_env(&["mv", &dg.path("app.zip"), &dg.url("rel/")], &changes);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("changed"), "{stderr}");
    let now = std::fs::read(dg.work().join("app.zip")).expect("the source is kept");
    assert!(now.starts_with(&before) && now.len() > before.len());
    let listing = dg.ok(&["ls", "-r", &dg.url("")]);
    assert!(listing.trim().is_empty(), "nothing stored: {listing}");

    // mv -r: the changed file stays, the others move.
    std::fs::create_dir_all(dg.work().join("tree")).unwrap();
    write_file(&dg.work(), "tree/only.zip", &noise(2 << 20, 6));
    let out = dg.run_env(&["mv", "-r", &dg.path("tree"), &dg.url("t/")], &changes);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(dg.work().join("tree/only.zip").exists(), "kept");
    let listing = dg.ok(&["ls", "-r", &dg.url("")]);
    assert!(listing.trim().is_empty(), "nothing stored: {listing}");
    // Without the change, the same move removes the source.
    dg.ok(&["mv", &dg.path("app.zip"), &dg.url("rel/")]);
    assert!(!dg.work().join("app.zip").exists());
}
