//! Plain segments restored on several threads. Each plain segment is compressed by its own
//! encoder from its own parameters, so segments are independent of each other: a small
//! window of them is compressed at once while their output is written in the form's order.
//! Memory stays bounded by the window: at most [`Parallelism::window`] segments are held,
//! each at most [`MAX_HELD_SEGMENT`] bytes of content (a longer one is restored in place,
//! streamed, after the window ahead of it is written).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::Result;

/// Content of a segment held in memory to be restored on another thread at most.
pub(crate) const MAX_HELD_SEGMENT: u64 = 16 << 20;

/// How [`restore_with`](crate::restore_with) spreads its work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Parallelism {
    /// Threads that compress plain segments; 1 or 0 restores everything on the calling
    /// thread.
    pub workers: usize,
    /// Segments read ahead of the one being written at most (raw runs and plain segments
    /// alike); 0 restores everything on the calling thread.
    pub window: usize,
}

impl Default for Parallelism {
    /// One worker per available core (at most 8), with a window of twice that.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        Parallelism {
            workers,
            window: 2 * workers,
        }
    }
}

impl Parallelism {
    /// Everything on the calling thread.
    pub fn sequential() -> Self {
        Parallelism {
            workers: 1,
            window: 0,
        }
    }
    /// Sets [`Parallelism::workers`].
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// Sets [`Parallelism::window`].
    pub fn window(mut self, n: usize) -> Self {
        self.window = n;
        self
    }
    pub(crate) fn is_parallel(&self) -> bool {
        self.workers > 1 && self.window > 0
    }
}

/// Work for a worker: bytes to produce, and where to send them.
pub(crate) type Task = Box<dyn FnOnce() -> Result<Vec<u8>> + Send>;

struct Job {
    task: Task,
    done: Sender<Result<Vec<u8>>>,
}

/// Output due in order: bytes already at hand, or a task's result to wait for.
enum Due {
    Ready(Vec<u8>),
    Running(Receiver<Result<Vec<u8>>>),
}

/// The segments in flight, in the order their output is written.
pub(crate) struct Window {
    jobs: Sender<Job>,
    due: VecDeque<Due>,
    size: usize,
}

/// Runs `body` with a [`Window`] served by `parallelism.workers` threads; the threads end
/// when `body` does.
pub(crate) fn with_window<T>(
    parallelism: &Parallelism,
    body: impl FnOnce(&mut Window) -> Result<T>,
) -> Result<T> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    std::thread::scope(|scope| {
        for _ in 0..parallelism.workers {
            let queue = Arc::clone(&queue);
            scope.spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let next = queue.lock().map_or(None, |q| q.recv().ok());
                    let Some(job) = next else { break };
                    // The receiver is gone only when the restore already failed.
                    let _ = job.done.send((job.task)());
                }
            });
        }
        let mut window = Window {
            jobs,
            due: VecDeque::new(),
            size: parallelism.window.max(1),
        };
        body(&mut window)
        // `window` (and with it the job sender) is dropped here: idle workers stop waiting.
    })
}

impl Window {
    /// Queues bytes to write once everything queued before them is written.
    pub(crate) fn ready(&mut self, bytes: Vec<u8>, out: &mut dyn Write) -> Result<()> {
        self.make_room(out)?;
        self.due.push_back(Due::Ready(bytes));
        Ok(())
    }

    /// Queues `task` on a worker; its output is written after everything queued before it.
    pub(crate) fn spawn(&mut self, task: Task, out: &mut dyn Write) -> Result<()> {
        self.make_room(out)?;
        let (done, result) = mpsc::channel();
        let job = Job { task, done };
        match self.jobs.send(job) {
            Ok(()) => self.due.push_back(Due::Running(result)),
            // No worker is left to take it (none was started): run it here.
            Err(mpsc::SendError(job)) => self.due.push_back(Due::Ready((job.task)()?)),
        }
        Ok(())
    }

    /// Writes everything queued, in order.
    pub(crate) fn drain(&mut self, out: &mut dyn Write) -> Result<()> {
        while !self.due.is_empty() {
            self.write_first(out)?;
        }
        Ok(())
    }

    fn make_room(&mut self, out: &mut dyn Write) -> Result<()> {
        while self.due.len() >= self.size {
            self.write_first(out)?;
        }
        Ok(())
    }

    fn write_first(&mut self, out: &mut dyn Write) -> Result<()> {
        let bytes = match self.due.pop_front() {
            Some(Due::Ready(bytes)) => bytes,
            Some(Due::Running(result)) => result.recv().map_err(|_| {
                std::io::Error::other("a restoring thread ended without its result")
            })??,
            None => return Ok(()),
        };
        out.write_all(&bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_comes_in_queue_order_whatever_finishes_first() {
        for window in [1, 2, 3, 8] {
            let p = Parallelism::default().workers(3).window(window);
            let mut out = Vec::new();
            with_window(&p, |w| {
                for i in 0..20u8 {
                    if i % 3 == 0 {
                        w.ready(vec![i], &mut out)?;
                    } else {
                        let task: Task = Box::new(move || {
                            // later tasks finish sooner
                            std::thread::sleep(std::time::Duration::from_millis(u64::from(20 - i)));
                            Ok(vec![i, i])
                        });
                        w.spawn(task, &mut out)?;
                    }
                }
                w.drain(&mut out)
            })
            .unwrap();
            let want: Vec<u8> = (0..20u8)
                .flat_map(|i| if i % 3 == 0 { vec![i] } else { vec![i, i] })
                .collect();
            assert_eq!(out, want, "window {window}");
        }
    }

    #[test]
    fn a_failing_task_fails_the_drain_and_the_threads_still_end() {
        let p = Parallelism::default().workers(2).window(4);
        let mut out = Vec::new();
        let result = with_window(&p, |w| {
            w.spawn(Box::new(|| Ok(b"ok".to_vec())), &mut out)?;
            w.spawn(
                Box::new(|| Err(crate::Error::Unsupported("injected"))),
                &mut out,
            )?;
            w.spawn(Box::new(|| Ok(b"never written".to_vec())), &mut out)?;
            w.drain(&mut out)
        });
        assert!(matches!(result, Err(crate::Error::Unsupported("injected"))));
        assert_eq!(out, b"ok");
    }
}
