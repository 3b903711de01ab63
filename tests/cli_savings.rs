//! Telling users what they save (docs/cli.md, "Why a file saved little"): package formats
//! are delta-eligible, every upload's JSON says why it was stored as it was, the causes of
//! poor savings are explained once each on stderr, and `analyze` summarizes and warns.

mod cli_support;

use cli_support::support::{edited, noise, write_file};
use cli_support::{Dg, lines};

/// `write_file`, creating the directories on the way.
fn put(dir: &std::path::Path, rel: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
    write_file(dir, rel, bytes);
}

/// The JSON documents of `--json` output.
fn docs(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn package_formats_are_stored_as_deltas_by_default() {
    for dg in Dg::all("pkgs") {
        let base = noise(300_000, 11);
        let exts: &[&str] = if dg.name() == "local" {
            &["whl", "nupkg", "crate", "gem", "vsix", "aar"]
        } else {
            &["whl"]
        };
        for ext in exts {
            write_file(&dg.work(), &format!("p-1.0.{ext}"), &base);
            write_file(&dg.work(), &format!("p-1.1.{ext}"), &edited(&base, 3));
            let prefix = dg.url(&format!("{ext}/"));
            dg.ok(&["cp", &dg.path(&format!("p-1.0.{ext}")), &prefix]);
            let out = dg.ok(&["--json", "cp", &dg.path(&format!("p-1.1.{ext}")), &prefix]);
            let report = &docs(&out)[0];
            assert_eq!(
                report["stored_as"],
                "delta",
                "[{}] .{ext}: {report}",
                dg.name()
            );
            assert!(
                report["reason"].is_null(),
                "a good delta has no reason: {report}"
            );
            assert!(report["stored_size"].as_u64().unwrap() < 30_000, "{report}");
        }
    }
}

#[test]
fn poor_savings_are_explained_once_per_cause_on_stderr() {
    for dg in Dg::all("advice") {
        let src = dg.work().join("src");
        std::fs::create_dir_all(&src).unwrap();
        // Thirteen "compressed" releases: unrelated bytes, as gzip makes of a small change.
        for i in 0..13 {
            put(
                &src,
                &format!("npm/pkg-1.{i:02}.tgz"),
                &noise(40_000, 100 + i),
            );
        }
        // Two products in one prefix.
        put(&src, "mixed/botocore-1.0.zip", &noise(40_000, 200));
        put(&src, "mixed/ansible-9.0.zip", &noise(40_000, 201));
        // Files of no eligible extension.
        put(&src, "docs/a.pdf", &noise(1000, 300));
        put(&src, "docs/b.pdf", &noise(1000, 301));
        let args = [
            "cp",
            "-r",
            "--concurrency",
            "1",
            src.to_str().unwrap(),
            &dg.url("r/"),
        ];
        let out = dg.run(&args);
        assert!(out.status.success(), "{out:?}");
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        let notes: Vec<&str> = lines(&stderr)
            .into_iter()
            .filter(|l| l.starts_with("note: "))
            .collect();
        assert_eq!(
            notes.len(),
            3,
            "[{}] one line per cause: {stderr}",
            dg.name()
        );
        let about = |needle: &str| {
            notes
                .iter()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("[{}] no note on {needle}: {stderr}", dg.name()))
                .to_string()
        };
        let pdf = about(".pdf");
        assert!(
            pdf.starts_with("note: 2 files") && pdf.contains("--delta-extensions +pdf"),
            "{pdf}"
        );
        let tgz = about(".tgz");
        assert!(
            tgz.starts_with("note: 12 files") && tgz.contains("compressed"),
            "{tgz}"
        );
        assert!(tgz.contains(".tar") && tgz.contains("--no-delta"), "{tgz}");
        let mixed = about("mixes products");
        assert!(
            mixed.starts_with("note: 1 file") && mixed.contains(&dg.url("r/mixed/")),
            "{mixed}"
        );
        assert!(mixed.contains("own prefix"), "{mixed}");
        // stdout keeps its format: one line per file, no notes.
        assert_eq!(lines(&stdout).len(), 17, "{stdout}");
        assert!(
            lines(&stdout).iter().all(|l| l.starts_with("upload: ")),
            "{stdout}"
        );

        // -q: no notes; --json: a reason on every uploaded file.
        let out = dg.run(&[
            "-q",
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
            &dg.url("q/"),
        ]);
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        let out = dg.ok(&[
            "--json",
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
            &dg.url("j/"),
        ]);
        let mut reasons = std::collections::BTreeMap::<String, usize>::new();
        for d in docs(&out).iter().filter(|d| d["event"] == "uploaded") {
            let r = &d["report"]["reason"];
            let key = r.as_str().map_or("null".to_string(), str::to_string);
            *reasons.entry(key).or_default() += 1;
        }
        let expected: std::collections::BTreeMap<String, usize> = [
            ("compressed", 12),
            ("mixed-deltaspace", 1),
            ("new-reference", 2),
            ("not-eligible", 2),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(reasons, expected, "[{}] {out}", dg.name());
    }
}

#[test]
fn one_file_gets_its_note_too() {
    let dg = Dg::local();
    write_file(&dg.work(), "notes.txt", b"plain text");
    let out = dg.run(&["cp", &dg.path("notes.txt"), &dg.url("")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert_eq!(
        lines(&stdout),
        [format!(
            "upload: {} to {} (stored whole, 10 Bytes)",
            dg.path("notes.txt"),
            dg.url("notes.txt")
        )],
        "stdout as before"
    );
    assert!(
        stderr.starts_with("note: 1 file (10 Bytes) stored whole without trying a delta: .txt"),
        "{stderr}"
    );
    // A first file and a good delta are what one expects: nothing to explain.
    let base = noise(200_000, 1);
    write_file(&dg.work(), "a-1.zip", &base);
    write_file(&dg.work(), "a-2.zip", &edited(&base, 2));
    for f in ["a-1.zip", "a-2.zip"] {
        let out = dg.run(&["cp", &dg.path(f), &dg.url("a/")]);
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    }
}

#[test]
fn analyze_summarizes_the_largest_and_warns_about_mixes_and_compression() {
    let dg = Dg::local();
    let src = dg.work().join("src");
    for i in 0..15 {
        put(
            &src,
            &format!("s{i:02}/app-1.0.zip"),
            &noise(1000 + 100 * i, i as u64),
        );
    }
    put(&src, "mixed/botocore-1.0.zip", &noise(5000, 50));
    put(&src, "mixed/ansible-9.0.zip", &noise(5000, 51));
    put(&src, "npm/pkg-1.0.tgz", &noise(4000, 52));
    put(&src, "npm/pkg-1.1.tgz", &noise(4000, 53));
    let dir = src.to_str().unwrap();
    let out = dg.run(&["analyze", dir]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let shown = lines(&stdout);
    assert_eq!(
        shown.len(),
        12,
        "ten deltaspaces, the rest, the total: {stdout}"
    );
    assert!(shown[0].starts_with("mixed: ") && shown[0].contains("[mixes ansible, botocore]"));
    assert!(shown[1].starts_with("npm: ") && shown[1].contains("[2 compressed]"));
    assert!(shown[10].starts_with("... 7 more deltaspaces"), "{stdout}");
    assert!(shown[11].contains("19 files in 17 deltaspaces"), "{stdout}");
    let warnings = lines(&stderr);
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(warnings[0].contains("mix products: mixed (ansible, botocore)"));
    assert!(warnings[1].contains("compressed as one stream"));

    assert_eq!(lines(&dg.ok(&["analyze", "--top", "3", dir])).len(), 5);
    assert_eq!(lines(&dg.ok(&["analyze", "--all", dir])).len(), 18);
    let json = dg.ok(&["--json", "analyze", "--top", "1", dir]);
    let report = &docs(&json)[0];
    assert_eq!(
        report["deltaspaces"].as_array().unwrap().len(),
        17,
        "JSON has all"
    );
    assert_eq!(report["mixed_deltaspaces"], 1);
    assert_eq!(report["compressed_files"], 2);

    // A file is not a directory, and the message says which path.
    let file = src.join("npm/pkg-1.0.tgz");
    let (_, stderr) = dg.exits(2, &["analyze", file.to_str().unwrap()]);
    assert!(
        stderr.contains(file.to_str().unwrap()) && stderr.contains("is not a directory"),
        "{stderr}"
    );
}
