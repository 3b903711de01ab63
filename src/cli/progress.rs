//! The progress display on stderr: what the client reports (bytes hashed, encoded, uploaded,
//! rebuilt) drawn as one indicatif bar, with throughput and ETA.
//!
//! One file (`cp`): the bar follows the file's current phase, `encoding app.zip 45 MiB/120
//! MiB 30 MiB/s ETA 3s`, starting again at each phase. A tree (`cp -r`, `sync`, `mv -r`):
//! the bar covers the planned bytes; each file in flight is credited with the share of its
//! size its phases have reached ([`credit`]), and with all of it once it is done, so the
//! bar only moves forward and ends at the total.

use std::collections::HashMap;
use std::sync::Mutex;

use deltaglider::{Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Where each phase starts and ends within a file's share of a tree's bytes: hashing is a
/// fast copy, encoding the long part, uploading sends the (small) delta. A file stored
/// whole jumps from the end of hashing to uploading.
pub fn phase_span(phase: Phase) -> (f64, f64) {
    match phase {
        Phase::Hashing => (0.0, 0.2),
        Phase::Encoding => (0.2, 0.85),
        Phase::Uploading => (0.85, 1.0),
        Phase::Rebuilding => (0.0, 1.0),
    }
}

/// Bytes of a `size`-byte file to count as done when `done` of the `total` bytes of its
/// `phase` are.
pub fn credit(size: u64, phase: Phase, done: u64, total: u64) -> u64 {
    let (lo, hi) = phase_span(phase);
    let fraction = if total == 0 {
        1.0
    } else {
        (done.min(total) as f64) / total as f64
    };
    ((size as f64) * (lo + (hi - lo) * fraction)).round() as u64
}

/// One file in flight.
#[derive(Debug)]
struct InFlight {
    size: u64,
    phase: Phase,
    total: u64,
    done: u64,
    /// Bytes of the bar already credited to it.
    credited: u64,
}

#[derive(Debug, Default)]
struct State {
    /// A tree transfer was planned: the bar counts its bytes.
    tree: Option<Tree>,
    files: HashMap<String, InFlight>,
}

#[derive(Debug)]
struct Tree {
    files: usize,
    done: usize,
}

/// The bar the client reports to.
#[derive(Debug)]
pub struct BarProgress {
    bar: ProgressBar,
    state: Mutex<State>,
}

// `wide_msg` takes the rest of the line and is cut to fit: a frame never wraps, so clearing it
// leaves nothing behind.
const SINGLE: &str =
    "{spinner} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}";
const TREE: &str =
    "{bar:20} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template")
}

/// A file name short enough for a status line.
fn short(key: &str) -> String {
    let name = deltaglider::keys::file_name(key);
    let name = super::output::escape(name);
    if name.chars().count() > 40 {
        let tail: String = name.chars().skip(name.chars().count() - 39).collect();
        format!("…{tail}")
    } else {
        name.into_owned()
    }
}

impl BarProgress {
    pub fn new(bar: ProgressBar) -> Self {
        BarProgress {
            bar,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A tree transfer of `files` files and `bytes` bytes starts: the bar counts its bytes.
    pub fn planned(&self, files: usize, bytes: u64) {
        let mut state = self.lock();
        state.tree = Some(Tree { files, done: 0 });
        self.bar.set_style(style(TREE));
        self.bar.set_length(bytes);
        self.bar.set_position(0);
        self.bar.reset_eta();
        self.bar.set_message(format!("0/{files} files"));
    }

    /// A file of the tree is finished (stored, failed, deleted): all of its `size` counts.
    pub fn file_done(&self, key: Option<&str>, size: u64) {
        let mut state = self.lock();
        let credited = key
            .and_then(|k| state.files.remove(k))
            .map_or(0, |f| f.credited);
        self.bar.inc(size.saturating_sub(credited));
        if let Some(tree) = &mut state.tree {
            tree.done += 1;
            self.bar
                .set_message(format!("{}/{} files", tree.done, tree.files));
        }
    }
}

impl Progress for BarProgress {
    fn start(&self, key: &str, phase: Phase, total: u64) {
        let mut state = self.lock();
        let State { tree, files } = &mut *state;
        let size = match phase {
            Phase::Hashing | Phase::Rebuilding => total,
            _ => files.get(key).map_or(total, |f| f.size),
        };
        let file = files.entry(key.to_string()).or_insert(InFlight {
            size,
            phase,
            total,
            done: 0,
            credited: 0,
        });
        file.phase = phase;
        file.total = total;
        file.done = 0;
        match tree {
            None => {
                // One file: the bar follows this phase.
                self.bar.set_style(style(SINGLE));
                self.bar.set_length(total);
                self.bar.set_position(0);
                self.bar.reset_eta();
                self.bar
                    .set_message(format!("{} {}", phase.name(), short(key)));
            }
            Some(tree) => {
                let next = credit(file.size, phase, 0, total);
                if next > file.credited {
                    self.bar.inc(next - file.credited);
                    file.credited = next;
                }
                self.bar.set_message(format!(
                    "{}/{} files, {} {}",
                    tree.done,
                    tree.files,
                    phase.name(),
                    short(key)
                ));
            }
        }
    }

    fn advance(&self, key: &str, bytes: u64) {
        let mut state = self.lock();
        let tree = state.tree.is_some();
        let Some(file) = state.files.get_mut(key) else {
            return;
        };
        file.done = (file.done + bytes).min(file.total);
        if tree {
            let next = credit(file.size, file.phase, file.done, file.total);
            if next > file.credited {
                self.bar.inc(next - file.credited);
                file.credited = next;
            }
        } else {
            self.bar.set_position(file.done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_credited_forward_through_its_phases() {
        let size = 1000;
        let mut last = 0;
        for phase in [Phase::Hashing, Phase::Encoding, Phase::Uploading] {
            for done in [0, 25, 50, 100] {
                let c = credit(size, phase, done, 100);
                assert!(c >= last, "{phase:?} {done}: {c} < {last}");
                last = c;
            }
        }
        assert_eq!(last, size, "a finished upload counts its whole size");
        assert_eq!(credit(size, Phase::Hashing, 100, 100), 200);
        assert_eq!(credit(size, Phase::Encoding, 50, 100), 525);
        assert_eq!(credit(size, Phase::Rebuilding, 1, 4), 250);
        assert_eq!(
            credit(size, Phase::Uploading, 0, 0),
            size,
            "nothing to send"
        );
        assert_eq!(
            credit(size, Phase::Encoding, 500, 100),
            850,
            "capped at the phase"
        );
    }

    #[test]
    fn a_tree_bar_ends_at_its_planned_bytes() {
        let p = BarProgress::new(ProgressBar::hidden());
        p.planned(3, 3000);
        // a delta upload, a whole upload, and a server-side copy that reports nothing
        for (key, encoded) in [("a.zip", true), ("b.txt", false)] {
            p.start(key, Phase::Hashing, 1000);
            p.advance(key, 600);
            p.advance(key, 400);
            if encoded {
                p.start(key, Phase::Encoding, 1000);
                p.advance(key, 500);
                assert_eq!(p.bar.position(), 525);
                p.advance(key, 500);
            }
            p.start(key, Phase::Uploading, 40);
            p.advance(key, 40);
        }
        assert_eq!(p.bar.position(), 2000);
        p.file_done(Some("a.zip"), 1000);
        p.file_done(Some("b.txt"), 1000);
        p.file_done(Some("c.zip"), 1000);
        assert_eq!(p.bar.position(), 3000);
        assert_eq!(p.bar.length(), Some(3000));
        assert_eq!(p.bar.message(), "3/3 files");
    }

    #[test]
    fn one_file_shows_each_phase_with_its_bytes() {
        let p = BarProgress::new(ProgressBar::hidden());
        p.start("rel/app-1.1.zip", Phase::Hashing, 5000);
        p.advance("rel/app-1.1.zip", 2000);
        assert_eq!(p.bar.message(), "hashing app-1.1.zip");
        assert_eq!((p.bar.position(), p.bar.length()), (2000, Some(5000)));
        p.start("rel/app-1.1.zip", Phase::Encoding, 5000);
        assert_eq!(p.bar.message(), "encoding app-1.1.zip");
        assert_eq!(p.bar.position(), 0);
        p.advance("rel/app-1.1.zip", 9000);
        assert_eq!(p.bar.position(), 5000, "never past the phase's total");
        p.start("rel/app-1.1.zip", Phase::Uploading, 70);
        assert_eq!(p.bar.message(), "uploading app-1.1.zip");
        assert_eq!(p.bar.length(), Some(70));
    }

    #[test]
    fn long_and_hostile_names_are_shortened_and_escaped() {
        assert_eq!(short("a/b\x1b[2J.zip"), "b\\x1b[2J.zip");
        let long = format!("{}.zip", "x".repeat(60));
        assert_eq!(short(&long).chars().count(), 40);
        assert!(short(&long).ends_with("x.zip"));
    }
}
