//! Entries waiting to be stored, per bucket and deltaspace: concurrent uploads of one
//! process share segments (group commit). One upload at a time stores a deltaspace's
//! queue; the others wait until their own entry has been stored (or tried), and one of them
//! takes the next turn, so no upload waits on entries that arrived after its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use super::segment::Entry;

/// Bucket and deltaspace.
pub(super) type Slot = (String, String);

/// The queues of an engine and its clones.
#[derive(Debug, Default)]
pub(crate) struct IndexLog {
    queues: Mutex<Queues>,
    /// Deltaspaces whose merged segments could not be deleted (a policy that lets this
    /// writer add objects but not delete them): merging them again would only add segments.
    no_merge: Mutex<HashSet<Slot>>,
    /// Delta uploads under way in this engine and its clones: each will bring an entry.
    uploads: AtomicUsize,
}

/// A delta upload under way, counted until it is dropped.
pub(crate) struct UploadUnderWay<'a>(&'a AtomicUsize);

impl Drop for UploadUnderWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct Queues {
    /// The last sequence number given, over every queue: numbers never repeat, so that an
    /// upload whose queue was removed (all done) and made anew is not taken for a later one.
    last: u64,
    by_slot: HashMap<Slot, Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    /// Entries not yet taken, with their sequence numbers.
    entries: Vec<(u64, Entry)>,
    /// The number of the last entry queued.
    pushed: u64,
    /// Every entry of this queue up to this number has been stored or tried (entries
    /// numbered before the queue was made are done).
    done: u64,
    /// Whether an upload is storing a batch.
    storing: bool,
    /// Wakes the waiting uploads when a batch is done.
    batch_done: Arc<Notify>,
}

/// What an upload does next with its entry.
pub(super) enum Step {
    /// Its entry is stored (or was tried): the upload goes on.
    Done,
    /// Its turn to store these entries; then [`IndexLog::finish`].
    Store(Batch),
    /// Another upload is storing: wait for this, then ask again.
    Wait(OwnedNotified),
}

/// A batch being stored: its entries, and the last sequence number among them.
pub(super) struct Batch {
    pub entries: Vec<Entry>,
    last: u64,
}

/// The turn of the upload storing a batch; if its future is dropped halfway, the batch
/// counts as tried (an entry lost only costs a listing a HEAD) and the turn passes on.
pub(super) struct Turn<'a> {
    log: &'a IndexLog,
    slot: &'a Slot,
    last: Option<u64>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(last) = self.last.take() {
            self.log.end_batch(self.slot, last);
        }
    }
}

impl IndexLog {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a delta upload until the guard is dropped.
    pub(crate) fn upload_started(&self) -> UploadUnderWay<'_> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        UploadUnderWay(&self.uploads)
    }

    /// Whether uploads other than the caller's are under way: their entries are moments
    /// away, and a turn that waits for them stores one segment where it would store many.
    pub(super) fn others_under_way(&self) -> bool {
        self.uploads.load(Ordering::SeqCst) > 1
    }

    /// Queues `entry`; returns its sequence number.
    pub(super) fn push(&self, slot: &Slot, entry: Entry) -> u64 {
        let mut queues = self.lock();
        let before = queues.last;
        queues.last += 1;
        let seq = queues.last;
        let q = queues.by_slot.entry(slot.clone()).or_insert_with(|| Queue {
            done: before,
            ..Default::default()
        });
        q.pushed = seq;
        q.entries.push((seq, entry));
        seq
    }

    /// The next step of the upload whose entry is number `seq`.
    pub(super) fn step(&self, slot: &Slot, seq: u64) -> Step {
        let mut queues = self.lock();
        let Some(q) = queues.by_slot.get_mut(slot) else {
            // removed once every entry was done
            return Step::Done;
        };
        if q.done >= seq {
            return Step::Done;
        }
        if q.storing {
            // Made under the lock: the end of the batch being stored wakes it, even if it
            // ends before the waiter polls.
            return Step::Wait(q.batch_done.clone().notified_owned());
        }
        q.storing = true;
        let entries = std::mem::take(&mut q.entries);
        let last = entries.last().map_or(q.done, |(n, _)| *n);
        Step::Store(Batch {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            last,
        })
    }

    /// The turn for `batch`, ended by [`Turn::finish`] or by being dropped.
    pub(super) fn turn<'a>(&'a self, slot: &'a Slot, batch: &Batch) -> Turn<'a> {
        Turn {
            log: self,
            slot,
            last: Some(batch.last),
        }
    }

    fn end_batch(&self, slot: &Slot, last: u64) {
        let mut queues = self.lock();
        let Some(q) = queues.by_slot.get_mut(slot) else {
            return;
        };
        q.done = q.done.max(last);
        q.storing = false;
        q.batch_done.notify_waiters();
        if q.entries.is_empty() && q.done >= q.pushed {
            queues.by_slot.remove(slot);
        }
    }

    /// Whether merging `slot`'s segments is still worth it.
    pub(super) fn may_merge(&self, slot: &Slot) -> bool {
        !self
            .no_merge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(slot)
    }

    /// Stops merging `slot`'s segments in this process.
    pub(super) fn stop_merging(&self, slot: &Slot) {
        self.no_merge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot.clone());
    }
}

impl Turn<'_> {
    /// Adds to `batch` the entries queued since it was taken; their uploads, waiting,
    /// are done when this turn is.
    pub(super) fn top_up(&mut self, batch: &mut Batch) {
        let mut queues = self.log.lock();
        let Some(q) = queues.by_slot.get_mut(self.slot) else {
            return;
        };
        for (n, e) in std::mem::take(&mut q.entries) {
            batch.last = batch.last.max(n);
            batch.entries.push(e);
        }
        self.last = Some(batch.last);
    }

    /// The batch is stored (or was tried): the waiting uploads go on.
    pub(super) fn finish(mut self) {
        if let Some(last) = self.last.take() {
            self.log.end_batch(self.slot, last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn entry(name: &str) -> Entry {
        Entry::written(name, "e", 1, Utc::now(), &Default::default())
    }

    #[test]
    fn the_first_upload_stores_and_the_others_wait_for_their_own_entry() {
        let log = IndexLog::default();
        let slot: Slot = ("b".into(), "s".into());
        let a = log.push(&slot, entry("a.delta"));
        let Step::Store(batch) = log.step(&slot, a) else {
            panic!("the first upload stores");
        };
        assert_eq!(batch.entries.len(), 1);
        let turn = log.turn(&slot, &batch);
        // b arrives while a stores: it waits, then stores its own batch
        let b = log.push(&slot, entry("b.delta"));
        assert!(matches!(log.step(&slot, b), Step::Wait(_)));
        turn.finish();
        assert!(matches!(log.step(&slot, a), Step::Done));
        let Step::Store(batch) = log.step(&slot, b) else {
            panic!("b takes the next turn");
        };
        assert_eq!(batch.entries[0].name, "b.delta");
        // c arrives during b's turn; b is done once its batch is, whatever c does
        let c = log.push(&slot, entry("c.delta"));
        log.turn(&slot, &batch).finish();
        assert!(matches!(log.step(&slot, b), Step::Done));
        assert!(matches!(log.step(&slot, c), Step::Store(_)));
    }

    #[test]
    fn a_turn_topped_up_is_done_for_every_entry_it_took() {
        let log = IndexLog::default();
        let slot: Slot = ("b".into(), "s".into());
        let a = log.push(&slot, entry("a.delta"));
        let Step::Store(mut batch) = log.step(&slot, a) else {
            panic!("the first upload stores");
        };
        let mut turn = log.turn(&slot, &batch);
        let b = log.push(&slot, entry("b.delta"));
        let c = log.push(&slot, entry("c.delta"));
        assert!(matches!(log.step(&slot, b), Step::Wait(_)));
        turn.top_up(&mut batch);
        let names: Vec<_> = batch.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.delta", "b.delta", "c.delta"]);
        turn.finish();
        for seq in [a, b, c] {
            assert!(matches!(log.step(&slot, seq), Step::Done), "{seq}");
        }
        assert!(log.lock().by_slot.is_empty());
    }

    #[test]
    fn uploads_are_counted_while_under_way() {
        let log = IndexLog::default();
        let one = log.upload_started();
        assert!(!log.others_under_way());
        let two = log.upload_started();
        assert!(log.others_under_way());
        drop(one);
        assert!(!log.others_under_way());
        drop(two);
        assert_eq!(log.uploads.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_dropped_turn_passes_on_and_the_queue_goes_once_all_is_done() {
        let log = IndexLog::default();
        let slot: Slot = ("b".into(), "s".into());
        let a = log.push(&slot, entry("a.delta"));
        let Step::Store(batch) = log.step(&slot, a) else {
            panic!("the first upload stores");
        };
        let b = log.push(&slot, entry("b.delta"));
        drop(log.turn(&slot, &batch));
        assert!(matches!(log.step(&slot, a), Step::Done));
        let Step::Store(batch) = log.step(&slot, b) else {
            panic!("b takes the next turn");
        };
        log.turn(&slot, &batch).finish();
        assert!(log.lock().by_slot.is_empty());
        assert!(matches!(log.step(&slot, b), Step::Done));
        // a new queue for the slot: b, woken late, is still done, and the new entry waits
        // for no one
        let c = log.push(&slot, entry("c.delta"));
        assert!(matches!(log.step(&slot, b), Step::Done));
        assert!(matches!(log.step(&slot, c), Step::Store(_)));
    }
}
