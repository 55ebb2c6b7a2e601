//! Playing the ring back as JPEGs, for a viewer that does not decode the camera's video (and
//! for a camera kept as JPEGs): from the keyframe at or before an instant, the recorded units
//! decoded in order on a blocking thread and paced by their pts at 1, 2 or 4 times; a picture
//! is encoded at the viewer's tier only when the viewer has taken the one before (a slow
//! viewer gets fewer pictures, never late ones). Kept JPEGs go as they are when the tier asks
//! for as much. Decoding is per viewer (each watches its own instant), so at most
//! [`MAX_PLAYERS`] run at once on a node.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use tokio::sync::mpsc;

use super::read::{self, ReadError};
use super::segment::{self, Kind, Record};
use super::Replay;
use crate::hub::cache::Encoded;
use crate::media::clock::Stamp;
use crate::media::h26x::VideoParams;
use crate::media::jpeg::{self, Jpeg};
use crate::media::tier::Tier;

/// Replays decoding for JPEG viewers at once on this node; more get `busy`.
pub const MAX_PLAYERS: usize = 8;
/// Stamps kept of units sent to the decoder and not yet out of it (B-frames reorder).
const IN_DECODER: usize = 32;

impl Replay {
    /// Plays `id` from `at_ms` at `speed` times its pace, as JPEGs at `tier`.
    pub fn play_pictures(
        &self,
        id: &str,
        at_ms: u64,
        speed: u8,
        tier: Tier,
    ) -> Result<mpsc::Receiver<Arc<Encoded>>, ReadError> {
        let mut walk = self.walk(id, at_ms)?;
        let permit = self
            .pictures
            .clone()
            .try_acquire_owned()
            .map_err(|_| ReadError::Busy)?;
        // One picture between the player and the viewer: the next is encoded once it is taken.
        let (tx, rx) = mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut player = PicturePlayer::new(at_ms, u32::from(speed.max(1)), tier);
            while let Some(path) = walk.next() {
                let Ok(recs) = read::records(&path) else {
                    return;
                };
                if !player.play(recs, &tx) {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

struct PicturePlayer {
    at_ms: u64,
    speed: u32,
    tier: Tier,
    started: bool,
    seq: u64,
    params: Option<VideoParams>,
    decoder: Option<ffmpeg::decoder::Video>,
    converter: Option<crate::media::decode::Converter>,
    /// The stamps of units in the decoder, by pts.
    pending: VecDeque<Stamp>,
    /// When the last picture was due, and its pts.
    clock: Option<(Instant, i64)>,
}

impl PicturePlayer {
    fn new(at_ms: u64, speed: u32, tier: Tier) -> Self {
        Self {
            at_ms,
            speed,
            tier,
            started: false,
            seq: 0,
            params: None,
            decoder: None,
            converter: None,
            pending: VecDeque::new(),
            clock: None,
        }
    }

    /// Plays one segment's records; false when the viewer is gone.
    fn play(&mut self, recs: Vec<Record>, tx: &mpsc::Sender<Arc<Encoded>>) -> bool {
        let skip = if self.started {
            0
        } else {
            let (params, key) = super::play::start_of(&recs, self.at_ms);
            if let Some(p) = params {
                self.params_changed(&recs[p].data);
            }
            key
        };
        for r in recs.into_iter().skip(skip) {
            if tx.is_closed() {
                return false;
            }
            let went = match r.kind {
                Kind::VideoParams => {
                    self.params_changed(&r.data);
                    true
                }
                Kind::Video if self.started || r.key => {
                    self.started = true;
                    self.decode(&r, tx)
                }
                Kind::Jpeg if self.started || r.key => {
                    self.started = true;
                    self.pace(r.stamp.pts_us);
                    let tier = self.tier;
                    let encode = || read::jpeg_picture(&r, tier).ok().map(|(j, _)| j);
                    offer(tx, &mut self.seq, encode, r.stamp)
                }
                _ => true,
            };
            if !went {
                return false;
            }
        }
        true
    }

    fn params_changed(&mut self, data: &[u8]) {
        let Some(params) = segment::params_of(data) else {
            return;
        };
        if self.params.as_ref() != Some(&params) {
            self.decoder = crate::media::decode::open_live(&params).ok();
            self.pending.clear();
            self.params = Some(params);
        }
    }

    /// Decodes one unit; each picture out of the decoder is paced and offered.
    fn decode(&mut self, r: &Record, tx: &mpsc::Sender<Arc<Encoded>>) -> bool {
        let Some(mut dec) = self.decoder.take() else {
            return true;
        };
        let mut packet = ffmpeg::Packet::copy(&r.data);
        packet.set_pts(Some(r.stamp.pts_us));
        packet.set_dts(Some(r.stamp.pts_us));
        if r.key {
            packet.set_flags(ffmpeg::packet::Flags::KEY);
        }
        if self.pending.len() == IN_DECODER {
            self.pending.pop_front();
        }
        self.pending.push_back(r.stamp);
        // A unit the decoder refuses is skipped; the pictures after it may still come.
        let _ = dec.send_packet(&packet);
        let mut decoded = ffmpeg::frame::Video::empty();
        let mut alive = true;
        while alive && dec.receive_frame(&mut decoded).is_ok() {
            let pts = decoded.pts().unwrap_or(r.stamp.pts_us);
            let stamp = match self.pending.iter().position(|s| s.pts_us == pts) {
                Some(i) => self.pending.remove(i).unwrap_or(r.stamp),
                None => r.stamp,
            };
            self.pace(stamp.pts_us);
            let (tier, converter) = (self.tier, &mut self.converter);
            let encode = || {
                let (_, _, pic) = crate::media::decode::to_picture(&mut decoded, converter)?;
                let crate::media::frame::Picture::Yuv(yuv) = pic else {
                    return None;
                };
                jpeg::encode_planes(&yuv.planes(), tier.quality, tier.scale).ok()
            };
            alive = offer(tx, &mut self.seq, encode, stamp);
        }
        self.decoder = Some(dec);
        alive
    }

    /// Sleeps until the picture at `pts` is due.
    fn pace(&mut self, pts: i64) {
        let due = super::play::due(self.clock, pts, self.speed, Instant::now());
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        self.clock = Some((due, pts));
    }
}

/// Sends the picture `encode` makes when the viewer has taken the one before; false when the
/// viewer is gone.
fn offer(
    tx: &mpsc::Sender<Arc<Encoded>>,
    seq: &mut u64,
    encode: impl FnOnce() -> Option<Jpeg>,
    stamp: Stamp,
) -> bool {
    let permit = match tx.try_reserve() {
        Ok(p) => p,
        Err(mpsc::error::TrySendError::Full(())) => return true,
        Err(mpsc::error::TrySendError::Closed(())) => return false,
    };
    if let Some(jpeg) = encode() {
        *seq += 1;
        permit.send(Arc::new(Encoded {
            seq: *seq,
            stamp,
            jpeg,
            encoded_at: tokio::time::Instant::now(),
            etag: String::new(),
        }));
    }
    true
}
