//! A camera's audio to listeners on other nodes, beside its video: the owner announces the
//! track every second (`camwall.relay.<id>.acfg`: codec, rate, channels, configuration; tiny,
//! taken by every node so that the status and the wall there know the camera has sound) and
//! publishes its frames (`.audio`) only while some node says it listens (`.awant`, repeated
//! every second, forgotten after `WANT_TTL`). A node with listeners of a camera it does not
//! ingest subscribes to the frames and feeds them into its own camera's audio feed, where the
//! WebSocket sessions, WebRTC sessions and the Opus transcode take them as from a camera.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use super::{lock, Relay};
use crate::hub::{AudioFrame, AudioInfo, Camera};
use crate::media::clock::Stamp;

/// A relayed frame's header: `[captured Unix ms u64][pts µs i64]`, then the frame.
const FRAME_HEADER: usize = 16;
/// The longest codec name announced (`pcmu`, `aac`, `opus`...).
const MAX_CODEC: usize = 16;

/// `[rate u32][channels u16][codec length u8][codec][configuration]`.
pub(super) fn config_payload(info: &AudioInfo) -> Bytes {
    let codec = &info.codec.as_bytes()[..info.codec.len().min(MAX_CODEC)];
    let mut b = BytesMut::with_capacity(7 + codec.len() + info.description.len());
    b.put_u32(info.sample_rate);
    b.put_u16(info.channels);
    b.put_u8(codec.len() as u8);
    b.put_slice(codec);
    b.put_slice(&info.description);
    b.freeze()
}

/// The track in an `.acfg` payload; `None` for one that is not (a bad or foreign message).
pub(super) fn parse_config(p: &[u8]) -> Option<AudioInfo> {
    let sample_rate = u32::from_be_bytes(p.get(0..4)?.try_into().ok()?);
    let channels = u16::from_be_bytes(p.get(4..6)?.try_into().ok()?);
    let n = usize::from(*p.get(6)?);
    let codec = std::str::from_utf8(p.get(7..7 + n)?).ok()?;
    if n == 0 || n > MAX_CODEC || sample_rate == 0 || channels == 0 {
        return None;
    }
    Some(AudioInfo {
        codec: codec.to_string(),
        sample_rate,
        channels,
        description: p[7 + n..].to_vec(),
    })
}

pub(super) fn frame_payload(f: &AudioFrame) -> Bytes {
    let mut b = BytesMut::with_capacity(FRAME_HEADER + f.data.len());
    b.put_u64(f.stamp.captured_unix_ms);
    b.put_i64(f.stamp.pts_us);
    b.put_slice(&f.data);
    b.freeze()
}

/// A relayed frame's stamp and data; `None` when too short to hold both.
pub(super) fn parse_frame(p: &Bytes) -> Option<(Stamp, Bytes)> {
    if p.len() <= FRAME_HEADER {
        return None;
    }
    let stamp = Stamp {
        captured_unix_ms: u64::from_be_bytes(p[0..8].try_into().ok()?),
        pts_us: i64::from_be_bytes(p[8..16].try_into().ok()?),
    };
    Some((stamp, p.slice(FRAME_HEADER..)))
}

impl Relay {
    /// Another node listens to one of our cameras (`.awant`).
    pub(super) fn audio_wanted(&self, subject: &str) {
        if let Some(id) = super::stream_of(subject).filter(|id| self.hub.stream(id).is_some()) {
            lock(&self.audio_wanted).insert(id, tokio::time::Instant::now());
        }
    }

    /// A remote camera's track (`.acfg`): its audio feed here takes it.
    pub(super) fn audio_config_arrived(&self, id: &str, payload: &[u8]) {
        if self.ingests(id) {
            return;
        }
        if let (Some(cam), Some(info)) = (self.hub.stream(id), parse_config(payload)) {
            cam.camera.audio().relayed_track(info);
        }
    }

    /// Whether a node listens to our camera `id`'s audio now.
    pub(super) fn audio_listened(&self, id: &str) -> bool {
        lock(&self.audio_wanted).contains_key(id)
    }

    /// Starts and stops the inbound audio of remote cameras to match local listeners.
    pub(super) fn reconcile_audio(self: &Arc<Self>, cancel: &CancellationToken) {
        let now = tokio::time::Instant::now();
        lock(&self.audio_wanted).retain(|_, t| now.duration_since(*t) < super::WANT_TTL);
        let cams = self.hub.streams();
        let mut tasks = lock(&self.audio_tasks);
        tasks.retain(|id, t| {
            let listened = cams
                .iter()
                .any(|c| c.id() == id && !self.ingests(id) && c.audio().listeners() > 0);
            if !listened || t.is_cancelled() {
                t.cancel();
            }
            listened && !t.is_cancelled()
        });
        for cam in cams {
            let id = cam.id().to_string();
            if self.ingests(&id) || cam.audio().listeners() == 0 || tasks.contains_key(&id) {
                continue;
            }
            let token = cancel.child_token();
            let (me, t) = (self.clone(), token.clone());
            tokio::spawn(async move { me.audio_inbound(cam, t).await });
            tasks.insert(id, token);
        }
    }

    /// Listener side: say we listen, and feed the frames to the local audio feed.
    async fn audio_inbound(self: Arc<Self>, cam: Arc<Camera>, token: CancellationToken) {
        self.pull_until(&cam, ("audio", "awant"), token, |p| {
            if let Some((stamp, frame)) = parse_frame(&p) {
                cam.audio().relayed_frame(frame, stamp);
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_and_a_frame_cross_the_relay_unchanged() {
        let info = AudioInfo {
            codec: "aac".into(),
            sample_rate: 48_000,
            channels: 2,
            description: vec![0x11, 0x90],
        };
        assert_eq!(parse_config(&config_payload(&info)), Some(info.clone()));
        assert_eq!(parse_config(&[0, 0]), None);
        assert_eq!(parse_config(&[0, 0, 31, 64, 0, 1, 0]), None, "no codec");
        let f = AudioFrame::new(
            Bytes::from_static(b"frame"),
            Stamp {
                pts_us: -5,
                captured_unix_ms: 7,
            },
            1,
            Arc::new(info),
        );
        let (stamp, data) = parse_frame(&frame_payload(&f)).unwrap();
        assert_eq!((stamp.pts_us, stamp.captured_unix_ms), (-5, 7));
        assert_eq!(&data[..], b"frame");
        assert!(parse_frame(&Bytes::from_static(&[0; 16])).is_none());
    }
}
