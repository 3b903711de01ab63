//! The checks and the directory handle, against real files.

use super::*;
use rustix::fs::Mode;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;

const STRICT: Policy = Policy { strict: true };

#[test]
fn creates_missing_components_0700() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("a/b/c");
    let d = SecureDir::open_root(&root, STRICT).unwrap();
    for p in ["a", "a/b", "a/b/c"] {
        let m = std::fs::metadata(t.path().join(p)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700, "{p}");
    }
    assert_eq!(d.path(), root);
}

#[test]
fn refuses_symlinked_root() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("real")).unwrap();
    std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
    let e = SecureDir::open_root(&t.path().join("link"), STRICT).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    // Not even the unsafe mode follows it.
    let e = SecureDir::open_root(&t.path().join("link"), Policy { strict: false }).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
}

#[test]
fn refuses_parent_components() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("a")).unwrap();
    let e = SecureDir::open_root(&t.path().join("a/.."), STRICT).unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
}

#[test]
fn refuses_world_writable_and_foreign_root() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = SecureDir::open_root(&root, STRICT).unwrap_err();
    assert!(e.to_string().contains("writable by group or others"), "{e}");
    assert!(SecureDir::open_root(&root, Policy { strict: false }).is_ok());
    if euid() == 0 {
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
        let e = SecureDir::open_root(&root, STRICT).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }
}

#[test]
fn refuses_foreign_component_created_by_someone_else_in_between() {
    if euid() != 0 {
        return;
    }
    // A subdirectory owned by another user is refused when reached.
    let t = tempfile::tempdir().unwrap();
    let d = SecureDir::open_root(t.path(), STRICT).unwrap();
    std::fs::create_dir(t.path().join("ab")).unwrap();
    std::os::unix::fs::chown(t.path().join("ab"), Some(65534), None).unwrap();
    let e = d.subdir("ab", true).unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

#[test]
fn temp_files_are_0600_exclusive_and_locked() {
    let t = tempfile::tempdir().unwrap();
    let d = SecureDir::open_root(t.path(), STRICT).unwrap();
    let (mut f, name) = d.create_temp().unwrap();
    f.write_all(b"x").unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert_eq!(st.st_mode & 0o777, 0o600);
    let probe = d.open_read(&name).unwrap().unwrap();
    assert!(
        !try_lock_exclusive(&probe),
        "live writer's lock must be visible"
    );
    drop(f);
    assert!(try_lock_exclusive(&probe));
}

#[test]
fn open_read_does_not_follow_symlinks_or_block_on_fifos() {
    let t = tempfile::tempdir().unwrap();
    let d = SecureDir::open_root(t.path(), STRICT).unwrap();
    std::fs::write(t.path().join("target"), b"secret").unwrap();
    std::os::unix::fs::symlink(t.path().join("target"), t.path().join("link")).unwrap();
    assert!(d.open_read("link").is_err());
    rustix::fs::mkfifoat(d.fd(), "fifo", Mode::from_raw_mode(0o600)).unwrap();
    let f = d.open_read("fifo").unwrap().unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert!(
        check_file_stat(&st, STRICT, None, 10)
            .unwrap_err()
            .contains("FIFO")
    );
}

#[test]
fn file_checks() {
    let t = tempfile::tempdir().unwrap();
    let d = SecureDir::open_root(t.path(), STRICT).unwrap();
    let (mut f, name) = d.create_temp().unwrap();
    f.write_all(b"12345").unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert!(check_file_stat(&st, STRICT, Some(5), 5).is_ok());
    assert!(
        check_file_stat(&st, STRICT, Some(4), 5)
            .unwrap_err()
            .contains("record says 4")
    );
    assert!(
        check_file_stat(&st, STRICT, None, 4)
            .unwrap_err()
            .contains("limit")
    );
    std::fs::hard_link(d.display(&name), t.path().join("other")).unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert!(
        check_file_stat(&st, STRICT, None, 5)
            .unwrap_err()
            .contains("2 hard links")
    );
    std::fs::remove_file(t.path().join("other")).unwrap();
    rustix::fs::fchmod(&f, Mode::from_raw_mode(0o644)).unwrap();
    let st = rustix::fs::fstat(&f).unwrap();
    assert!(
        check_file_stat(&st, STRICT, None, 5)
            .unwrap_err()
            .contains("0644")
    );
    assert!(check_file_stat(&st, Policy { strict: false }, None, 5).is_ok());
}

#[test]
fn remove_tree_does_not_follow_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"k").unwrap();
    let t = tempfile::tempdir().unwrap();
    let d = SecureDir::open_root(t.path(), STRICT).unwrap();
    std::fs::create_dir_all(t.path().join("x/y")).unwrap();
    std::os::unix::fs::symlink(outside.path(), t.path().join("x/y/evil")).unwrap();
    d.remove_tree("x").unwrap();
    assert!(!t.path().join("x").exists());
    assert!(outside.path().join("keep").exists());
}

#[test]
fn sealed_memfd_cannot_change() {
    let mut m = memfd("t").unwrap();
    m.write_all(b"abc").unwrap();
    seal(&m).unwrap();
    m.rewind().unwrap();
    let mut s = String::new();
    m.read_to_string(&mut s).unwrap();
    assert_eq!(s, "abc");
    #[cfg(target_os = "linux")]
    {
        assert!(m.write_all(b"x").is_err());
        assert!(m.set_len(1).is_err());
    }
}
