//! The replay ring's one disk thread: every camera's batches written in the order they come
//! (one `write` per batch, no fsync: the kernel flushes; a `kill -9` loses at most the batch
//! not yet handed over, about a second), segments opened, closed and renamed, the oldest
//! deleted as the ring's bounds say, and a failing disk turned into that camera's replay
//! error. Also finds the segments again at start.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::ring::{closed_name, open_name, parse_name, Ring, Segment};
use super::segment::{self, Batch, Kind, MAGIC};
use crate::media::clock::unix_ms_now;

/// How long a camera whose writes failed waits before it tries again (a full disk that was
/// cleaned up, a directory made writable again).
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What a camera's recorder hands to the disk thread.
#[derive(Debug)]
pub enum Op {
    /// Bytes (whole records) of `id`'s segment starting at `start_ms`; `new` opens it.
    Write {
        id: Arc<str>,
        start_ms: u64,
        new: bool,
        end_ms: u64,
        data: Batch,
    },
    /// `id`'s recorder stopped: its open segment is closed.
    Close { id: Arc<str> },
}

struct OpenSegment {
    file: File,
    path: PathBuf,
    start_ms: u64,
    end_ms: u64,
}

/// Writes what `rx` brings until every sender is gone.
pub fn spawn(
    dir: PathBuf,
    ring: Arc<Mutex<Ring>>,
    mut rx: mpsc::Receiver<Op>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("replay".into())
        .spawn(move || {
            let mut disk = Disk {
                dir,
                ring,
                open: HashMap::new(),
                failed: HashMap::new(),
            };
            while let Some(op) = rx.blocking_recv() {
                disk.apply(op);
            }
            for id in disk.open.keys().cloned().collect::<Vec<_>>() {
                disk.close(&id);
            }
        })
}

struct Disk {
    dir: PathBuf,
    ring: Arc<Mutex<Ring>>,
    open: HashMap<Arc<str>, OpenSegment>,
    /// Cameras whose last write failed, and when they may try again.
    failed: HashMap<Arc<str>, Instant>,
}

impl Disk {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Close { id } => self.close(&id),
            Op::Write {
                id,
                start_ms,
                new,
                end_ms,
                data,
            } => {
                if let Some(until) = self.failed.get(&id) {
                    if !new || Instant::now() < *until {
                        return;
                    }
                }
                let res = if new {
                    self.close(&id);
                    self.create(&id, start_ms, end_ms, &data)
                } else {
                    self.append(&id, start_ms, end_ms, &data)
                };
                match res {
                    Ok(()) => {
                        if self.failed.remove(&id).is_some() {
                            info!(camera = %id, "replay writes again");
                            self.ring().set_error(&id, None);
                        }
                    }
                    Err(e) => self.fail(&id, &e),
                }
                let gone = self.ring().evict(unix_ms_now());
                for path in gone {
                    if let Err(e) = fs::remove_file(&path) {
                        debug!(path = %path.display(), error = %e, "segment not deleted");
                    }
                }
            }
        }
    }

    fn create(
        &mut self,
        id: &Arc<str>,
        start_ms: u64,
        end_ms: u64,
        data: &Batch,
    ) -> std::io::Result<()> {
        let dir = self.dir.join(&**id);
        fs::create_dir_all(&dir)?;
        let path = dir.join(open_name(start_ms));
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        data.write_to(MAGIC, &mut file)?;
        self.ring().add(
            id,
            Segment {
                start_ms,
                end_ms,
                bytes: (MAGIC.len() + data.len()) as u64,
                path: path.clone(),
                open: true,
            },
        );
        self.open.insert(
            id.clone(),
            OpenSegment {
                file,
                path,
                start_ms,
                end_ms,
            },
        );
        Ok(())
    }

    fn append(
        &mut self,
        id: &Arc<str>,
        start_ms: u64,
        end_ms: u64,
        data: &Batch,
    ) -> std::io::Result<()> {
        // A batch of a segment that is no longer open (its start failed) is dropped: the
        // recorder opens a new one at its next keyframe.
        let Some(seg) = self.open.get_mut(id).filter(|s| s.start_ms == start_ms) else {
            return Ok(());
        };
        data.write_to(&[], &mut seg.file)?;
        seg.end_ms = seg.end_ms.max(end_ms);
        self.ring().grow(id, end_ms, data.len() as u64);
        Ok(())
    }

    /// Closes `id`'s open segment: renamed to its span. A rename that fails leaves the
    /// `.part`, which the next start reads again.
    fn close(&mut self, id: &str) {
        let Some(seg) = self.open.remove(id) else {
            return;
        };
        drop(seg.file);
        let to = seg
            .path
            .with_file_name(closed_name(seg.start_ms, seg.end_ms));
        match fs::rename(&seg.path, &to) {
            Ok(()) => self.ring().close(id, to),
            Err(e) => debug!(camera = %id, error = %e, "segment not renamed"),
        }
    }

    fn fail(&mut self, id: &Arc<str>, e: &std::io::Error) {
        self.close(id);
        let first = self
            .failed
            .insert(id.clone(), Instant::now() + RETRY_AFTER)
            .is_none();
        if first {
            warn!(camera = %id, error = %e, dir = %self.dir.display(), "replay stopped: cannot write; live viewing goes on, trying again every {}s", RETRY_AFTER.as_secs());
        }
        self.ring()
            .set_error(id, Some(format!("cannot write the replay: {e}")));
    }
}

/// Finds every camera's segments under `dir`: closed ones by their names; `.part` files (a
/// stop without closing them, a `kill -9`) read, cut after their last whole record and
/// closed. Files that are not segments are left alone.
pub fn recover(dir: &Path, ring: &mut Ring) {
    let Ok(cams) = fs::read_dir(dir) else {
        return;
    };
    let mut found = 0usize;
    for cam in cams.flatten() {
        let Some(id) = cam.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !crate::config::is_safe_id(&id) {
            continue;
        }
        let Ok(files) = fs::read_dir(cam.path()) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            let seg = match parse_name(&path) {
                Some((start_ms, Some(end_ms))) => f.metadata().ok().map(|m| Segment {
                    start_ms,
                    end_ms,
                    bytes: m.len(),
                    path,
                    open: false,
                }),
                Some((start_ms, None)) => close_torn(&path, start_ms),
                None => None,
            };
            if let Some(seg) = seg {
                ring.add(&id, seg);
                found += 1;
            }
        }
    }
    if found > 0 {
        info!(segments = found, mb = ring.total_bytes() >> 20, dir = %dir.display(), "replay found again");
    }
}

/// A `.part` left by a stop that did not close it: cut after its last whole record and
/// renamed to its span; removed when it holds no picture.
fn close_torn(path: &Path, start_ms: u64) -> Option<Segment> {
    let bytes = Bytes::from(fs::read(path).ok()?);
    let (records, len) = segment::read(&bytes).unwrap_or_default();
    let end_ms = records
        .iter()
        .filter(|r| matches!(r.kind, Kind::Video | Kind::Jpeg))
        .map(|r| r.stamp.captured_unix_ms)
        .max();
    let Some(end_ms) = end_ms else {
        let _ = fs::remove_file(path);
        return None;
    };
    if len < bytes.len() {
        let file = OpenOptions::new().write(true).open(path).ok()?;
        file.set_len(len as u64).ok()?;
    }
    let to = path.with_file_name(closed_name(start_ms, end_ms));
    fs::rename(path, &to).ok()?;
    Some(Segment {
        start_ms,
        end_ms,
        bytes: len as u64,
        path: to,
        open: false,
    })
}
