//! `--dryrun` changes nothing, on the local store and on the S3 server, for one object and
//! for many, in every direction: the store (every object, HEAD included) and the local
//! directory (paths, sizes, hashes, modes, times) are identical before and after, and every
//! result line says `(dryrun) <verb>:` like `aws s3`.

mod cli_support;

use cli_support::support::{edited, noise, write_file};
use cli_support::{Dg, lines};

/// A bucket with a deltaspace, a tree and local files next to it.
fn populate(dg: &Dg) {
    let work = dg.work();
    std::fs::create_dir_all(work.join("src/sub")).unwrap();
    std::fs::create_dir_all(work.join("dl")).unwrap();
    let base = noise(200_000, 11);
    write_file(&work, "src/a.zip", &base);
    write_file(&work, "src/b.zip", &edited(&base, 1));
    write_file(&work, "src/sub/c.txt", b"notes");
    write_file(&work, "dl/a.zip", b"an older local copy");
    dg.ok(&["cp", &dg.path("src/a.zip"), &dg.url("one/")]);
    dg.ok(&["cp", &dg.path("src/b.zip"), &dg.url("one/")]);
    dg.ok(&["cp", "-r", &dg.path("src"), &dg.url("tree/")]);
    dg.ok(&[
        "cp",
        &dg.path("src/sub/c.txt"),
        &dg.url("tree/only-remote.txt"),
    ]);
    // Something for sync to copy and to delete in every direction.
    write_file(&work, "src/new.zip", &edited(&base, 2));
}

#[test]
fn dryrun_changes_nothing_anywhere() {
    for dg in Dg::all("dry") {
        populate(&dg);
        let p = |rel: &str| dg.path(rel);
        let u = |key: &str| dg.url(key);
        let cases: Vec<Vec<String>> = vec![
            vec!["cp".into(), p("src/a.zip"), u("new/")],
            vec!["cp".into(), p("src/a.zip"), u("one/a.zip")],
            vec!["cp".into(), u("one/a.zip"), p("dl/")],
            vec!["cp".into(), u("one/b.zip"), p("dl/fresh/b.zip")],
            vec!["cp".into(), u("one/b.zip"), u("copy/")],
            vec!["cp".into(), "-r".into(), p("src"), u("tree2/")],
            vec!["cp".into(), "-r".into(), u("tree/"), p("dl2")],
            vec!["cp".into(), "-r".into(), u("tree/"), p("dl")],
            vec!["cp".into(), "-r".into(), u("tree/"), u("tree3/")],
            vec!["sync".into(), "--delete".into(), p("src"), u("tree/")],
            vec!["sync".into(), "--delete".into(), u("tree/"), p("dl")],
            vec!["sync".into(), "--delete".into(), u("tree/"), u("one/")],
            vec!["rm".into(), u("one/a.zip")],
            vec!["rm".into(), u("one/missing.zip")],
            vec!["rm".into(), "-r".into(), u("tree/")],
            vec!["rm".into(), "-r".into(), u("")],
            vec!["mv".into(), p("src/a.zip"), u("moved/")],
            vec!["mv".into(), u("one/b.zip"), p("dl/")],
            vec!["mv".into(), u("one/b.zip"), u("moved/")],
            vec!["mv".into(), "-r".into(), p("src"), u("moved-tree/")],
            vec!["mv".into(), "-r".into(), u("tree/"), p("dl3")],
            vec!["mv".into(), "-r".into(), u("tree/"), u("moved-tree/")],
            vec!["migrate".into(), "--yes".into(), u("tree/"), u("mig/")],
        ];
        for case in cases {
            let mut args: Vec<&str> = case.iter().map(String::as_str).collect();
            args.push("--dryrun");
            let before = dg.snapshot();
            let out = dg.run(&args);
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(out.status.success(), "[{}] {args:?}: {stderr}", dg.name());
            let after = dg.snapshot();
            assert!(
                before.0 == after.0,
                "[{}] {args:?} changed the store:\nbefore {:#?}\nafter {:#?}",
                dg.name(),
                before.0,
                after.0
            );
            assert!(
                before.1 == after.1,
                "[{}] {args:?} changed local files:\nbefore {:#?}\nafter {:#?}",
                dg.name(),
                before.1,
                after.1
            );
            let shown = lines(&stdout);
            assert!(
                !shown.is_empty(),
                "[{}] {args:?} printed nothing",
                dg.name()
            );
            for line in shown {
                assert!(
                    line.starts_with("(dryrun) "),
                    "[{}] {args:?}: '{line}' is not a dry-run line",
                    dg.name()
                );
                let verb = if args[0] == "mv" {
                    "move:"
                } else if args[0] == "rm" {
                    "delete:"
                } else {
                    ""
                };
                assert!(line.contains(verb), "[{}] {args:?}: {line}", dg.name());
            }
            for word in ["copied", "deleted"] {
                assert!(
                    !stderr.contains(word),
                    "[{}] {args:?}: a dry run says '{word}': {stderr}",
                    dg.name()
                );
            }
        }
    }
}

#[test]
fn dryrun_lines_name_the_verb_of_each_direction() {
    let dg = Dg::local();
    populate(&dg);
    let out = dg.ok(&["cp", &dg.path("src/a.zip"), &dg.url("x/"), "--dryrun"]);
    assert_eq!(
        out.trim(),
        format!(
            "(dryrun) upload: {} to {}",
            dg.path("src/a.zip"),
            dg.url("x/a.zip")
        )
    );
    let out = dg.ok(&["cp", &dg.url("one/a.zip"), &dg.path("dl/"), "--dryrun"]);
    assert_eq!(
        out.trim(),
        format!(
            "(dryrun) download: {} to {}",
            dg.url("one/a.zip"),
            dg.path("dl/a.zip")
        )
    );
    let out = dg.ok(&["cp", &dg.url("one/a.zip"), &dg.url("y/"), "--dryrun"]);
    assert_eq!(
        out.trim(),
        format!(
            "(dryrun) copy: {} to {}",
            dg.url("one/a.zip"),
            dg.url("y/a.zip")
        )
    );
    let out = dg.ok(&["rm", &dg.url("one/a.zip"), "--dryrun"]);
    assert_eq!(
        out.trim(),
        format!("(dryrun) delete: {}", dg.url("one/a.zip"))
    );
    let out = dg.run(&[
        "sync",
        &dg.path("src"),
        &dg.url("tree/"),
        "--delete",
        "--dryrun",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(dryrun) sync: would copy 1, would delete 1"),
        "{stderr}"
    );
    let out = dg.run(&["rm", "-r", &dg.url("tree/"), "--dryrun"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(dryrun) rm: would delete 4"), "{stderr}");
    // Dry runs still refuse what the real command would refuse.
    dg.exits(
        3,
        &["cp", &dg.url("one/none.zip"), &dg.path("dl/"), "--dryrun"],
    );
    dg.exits(
        3,
        &[
            "cp",
            &dg.path("src/a.zip"),
            "s3://no-such-bucket/",
            "--dryrun",
        ],
    );
    dg.exits(
        3,
        &[
            "rm",
            &dg.url("one/none.zip"),
            "--dryrun",
            "--fail-if-missing",
        ],
    );
    dg.exits(
        2,
        &[
            "cp",
            &dg.path("src/a.zip"),
            &dg.url("p/reference.bin"),
            "--dryrun",
        ],
    );
}
