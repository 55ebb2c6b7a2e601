//! A camera's AAC as Opus, for WebRTC listeners (browsers' WebRTC plays Opus, never AAC):
//! transcoded once per camera however many listen, only while at least one does. The first
//! listener starts a thread that decodes and encodes (`media::opus`), fed from the camera's
//! audio broadcast by a small task; the last one leaving stops both. Opus frames go out on a
//! broadcast of their own, stamped on the camera's clock like the AAC they came from.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::audio::{AudioFeed, AudioFrame, AudioInfo};
use crate::media::clock::Stamp;
use crate::media::opus::{OpusPacket, Transcoder, OPUS_RATE};
use crate::obs::metrics;

/// AAC frames waiting for the transcoder: a thread that falls this far behind (a machine
/// far over its capacity) skips frames instead of queueing them.
const QUEUE: usize = 16;
/// Opus packets buffered for listeners, as the camera's own audio (see `audio`).
const BROADCAST_FRAMES: usize = 64;

#[derive(Default)]
struct Running {
    listeners: usize,
    /// Ends the running transcode's feeding task, and with it the thread.
    stop: Option<CancellationToken>,
}

/// A camera's Opus feed.
pub struct OpusFeed {
    tx: broadcast::Sender<Arc<AudioFrame>>,
    running: Arc<Mutex<Running>>,
}

impl Default for OpusFeed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BROADCAST_FRAMES).0,
            running: Arc::default(),
        }
    }
}

/// Keeps a camera's transcode running while a listener lives; the last one dropped stops it.
pub struct Hold(Arc<Mutex<Running>>);

impl Drop for Hold {
    fn drop(&mut self) {
        let mut r = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        r.listeners = r.listeners.saturating_sub(1);
        if r.listeners == 0 {
            if let Some(stop) = r.stop.take() {
                stop.cancel();
            }
        }
    }
}

impl OpusFeed {
    /// Starts listening: the Opus frames from now on, and the hold that keeps the transcode
    /// of `source` (the camera's AAC) running from the first listener to the last. Must be
    /// called within a tokio runtime.
    pub fn listen(&self, source: &AudioFeed) -> (broadcast::Receiver<Arc<AudioFrame>>, Hold) {
        let frames = self.tx.subscribe();
        let mut r = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        r.listeners += 1;
        if r.stop.is_none() {
            r.stop = Some(start(source.subscribe(), self.tx.clone()));
        }
        drop(r);
        (frames, Hold(self.running.clone()))
    }

    /// Whether a transcode is running (someone listens).
    pub fn running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop
            .is_some()
    }
}

/// Starts a transcode: a task hands the camera's frames to a thread of its own (FFmpeg's
/// work blocks), which ends when the task does.
fn start(
    mut source: broadcast::Receiver<Arc<AudioFrame>>,
    out: broadcast::Sender<Arc<AudioFrame>>,
) -> CancellationToken {
    let stop = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Arc<AudioFrame>>(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("opus".into())
        .spawn(move || transcode(rx, out));
    if let Err(e) = spawned {
        warn!(error = %e, "no thread for an audio transcode: WebRTC listeners get no sound");
        return stop;
    }
    let until = stop.clone();
    tokio::spawn(async move {
        metrics::audio_transcode(true);
        loop {
            let frame = tokio::select! {
                _ = until.cancelled() => break,
                f = source.recv() => f,
            };
            match frame {
                // A thread behind by QUEUE frames loses this one (its listeners' players
                // fill the gap) rather than falling further behind.
                Ok(f) => {
                    if let Err(std::sync::mpsc::TrySendError::Disconnected(_)) = tx.try_send(f) {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        metrics::audio_transcode(false);
        // Dropping `tx` ends the thread.
    });
    stop
}

/// The thread's loop: AAC frames in, Opus frames out, until the feeding task ends.
fn transcode(
    rx: std::sync::mpsc::Receiver<Arc<AudioFrame>>,
    out: broadcast::Sender<Arc<AudioFrame>>,
) {
    let mut coder: Option<(Arc<AudioInfo>, Transcoder, Arc<AudioInfo>)> = None;
    let mut refused: Option<Arc<AudioInfo>> = None;
    let mut packets: Vec<OpusPacket> = Vec::new();
    let mut seq = 0u64;
    while let Ok(frame) = rx.recv() {
        if frame.info.codec != "aac"
            || refused
                .as_ref()
                .is_some_and(|i| Arc::ptr_eq(i, &frame.info))
        {
            continue;
        }
        let fresh = coder
            .as_ref()
            .is_none_or(|(i, ..)| !Arc::ptr_eq(i, &frame.info));
        if fresh {
            // A new session's track (the camera reconnected): a new decoder for its config.
            match Transcoder::new(&frame.info.description, frame.info.channels) {
                Ok(t) => {
                    let info = Arc::new(AudioInfo {
                        codec: "opus".into(),
                        sample_rate: OPUS_RATE,
                        channels: t.channels(),
                        description: Vec::new(),
                    });
                    coder = Some((frame.info.clone(), t, info));
                }
                Err(e) => {
                    warn!(error = %e, "cannot transcode this camera's AAC to Opus");
                    refused = Some(frame.info.clone());
                    continue;
                }
            }
        }
        let Some((_, t, info)) = coder.as_mut() else {
            continue;
        };
        packets.clear();
        // A unit FFmpeg refuses is lost; the next goes on.
        let _ = t.push(&frame.data, frame.stamp.pts_us, &mut packets);
        metrics::audio_transcoded(packets.len() as u64);
        for p in packets.drain(..) {
            seq += 1;
            let f = AudioFrame::new(p.data.into(), Stamp::now(p.pts_us), seq, info.clone());
            // No listener left is not an error: the task is about to stop this thread.
            let _ = out.send(Arc::new(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_transcode_runs_while_someone_listens_and_once_for_all() {
        let (config, units) = crate::media::opus::tests::aac_tone(440.0, 48_000, 1.0);
        let audio = AudioFeed::default();
        audio.start(Some(AudioInfo {
            codec: "aac".into(),
            sample_rate: 48_000,
            channels: 1,
            description: config,
        }));
        let opus = OpusFeed::default();
        assert!(!opus.running(), "no listener, no transcode");
        let (mut a, hold_a) = opus.listen(&audio);
        let (mut b, hold_b) = opus.listen(&audio);
        assert!(opus.running());
        for (i, u) in units.iter().enumerate() {
            let ts = i as i64 * 1024;
            audio.frame(
                bytes::Bytes::from(u.clone()),
                Some(ts),
                ts * 1_000_000 / 48_000,
            );
        }
        let (fa, fb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert!(Arc::ptr_eq(&fa, &fb), "one transcode for both listeners");
        assert_eq!(fa.info.codec, "opus");
        assert_eq!(fa.info.sample_rate, 48_000);
        drop(hold_a);
        assert!(opus.running(), "one still listens");
        drop(hold_b);
        assert!(!opus.running(), "the last one left: stopped");
    }
}
