//! The decode pool: a fixed number of threads that decode, on demand, the video of cameras read
//! on their task (RTSP through retina), so that decoding costs no thread per camera and never
//! blocks an async worker.
//!
//! A camera's session kicks its [`PooledDecoder`] after each unit it forwards; the decoder
//! then waits in one FIFO queue, at most once, and a pool thread catches it up with the
//! camera's video feed: every unit since the last one it had (a decoder needs them all for its
//! references), or only the newest picture's GOP when demand asks for keyframes or nothing
//! (`on_demand`). One camera's burst is one turn: a camera kicked again while decoding goes to
//! the back of the queue, behind the cameras that waited (round robin). The queue holds at most
//! one entry per decoding camera, so nothing grows with a slow decode but the feed's own GOP.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::time::Instant;
use tracing::error;

use super::on_demand::{publish_decoded, OnDemandDecoder};
use crate::hub::video::FeedPicture;
use crate::hub::Camera;
use crate::media::tier::Thinner;

/// A decoder's place in the pool.
const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and kicked again meanwhile: queued again when this turn ends.
const DIRTY: u8 = 3;

/// The most decode threads, whatever the machine: decoding on demand is for the pictures
/// people look at, not every camera.
const MAX_THREADS: usize = 16;

struct Pool {
    queue: Mutex<VecDeque<Arc<Job>>>,
    ready: Condvar,
}

/// The pool, started with its threads on first use.
fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        }));
        for i in 0..threads() {
            let spawned = std::thread::Builder::new()
                .name(format!("decode-{i}"))
                .spawn(move || pool.work());
            if let Err(e) = spawned {
                error!(error = %e, "cannot start a decode thread");
            }
        }
        pool
    })
}

/// One decode thread per core, within [`MAX_THREADS`].
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, MAX_THREADS)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic mid-decode leaves state that the next turn can still use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    fn push(&self, job: Arc<Job>) {
        lock(&self.queue).push_back(job);
        self.ready.notify_one();
    }

    fn work(&self) {
        loop {
            let job = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(job) = q.pop_front() {
                        break job;
                    }
                    q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
            };
            job.state.store(RUNNING, Ordering::Release);
            job.turn();
            if job
                .state
                .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Kicked while decoding: back of the queue.
                job.state.store(QUEUED, Ordering::Release);
                self.push(job);
            }
        }
    }
}

/// One session's decoder in the pool.
struct Job {
    cam: Arc<Camera>,
    generation: u64,
    state: AtomicU8,
    /// `None` once the session ended.
    work: Mutex<Option<Work>>,
}

struct Work {
    decoder: OnDemandDecoder,
    thinner: Thinner,
    out: Vec<FeedPicture>,
}

impl Job {
    /// Catches the decoder up with the feed and publishes what it made.
    fn turn(&self) {
        let mut guard = lock(&self.work);
        let Some(w) = guard.as_mut() else {
            return;
        };
        let Work {
            decoder,
            thinner,
            out,
        } = w;
        let (cam, generation) = (&self.cam, self.generation);
        decoder.catch_up(cam.video(), out, &mut |pictures| {
            if cam.is_current(generation) {
                publish_decoded(cam, pictures, thinner, Instant::now());
            } else {
                pictures.clear();
            }
        });
    }
}

/// The session's handle on its decoder in the pool. Dropping it ends the decoder (waiting for
/// a turn in progress): let it go off the async workers.
pub struct PooledDecoder(Arc<Job>);

impl PooledDecoder {
    pub fn new(
        cam: Arc<Camera>,
        generation: u64,
        decoder: OnDemandDecoder,
        thinner: Thinner,
    ) -> Self {
        Self(Arc::new(Job {
            cam,
            generation,
            state: AtomicU8::new(IDLE),
            work: Mutex::new(Some(Work {
                decoder,
                thinner,
                out: Vec::new(),
            })),
        }))
    }

    /// The session forwarded a unit: the decoder gets a turn (once, however often kicked).
    pub fn kick(&self) {
        let state = &self.0.state;
        let mut now = state.load(Ordering::Acquire);
        loop {
            let next = match now {
                IDLE => QUEUED,
                RUNNING => DIRTY,
                _ => return,
            };
            match state.compare_exchange(now, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) if next == QUEUED => return pool().push(self.0.clone()),
                Ok(_) => return,
                Err(actual) => now = actual,
            }
        }
    }
}

impl Drop for PooledDecoder {
    fn drop(&mut self) {
        // A queued turn finds nothing; the decoder's drop tells snapshots the session ended.
        let work = lock(&self.0.work).take();
        drop(work);
    }
}
