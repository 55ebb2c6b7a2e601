//! The decoder of a network H.264/H.265 camera, which decodes only while its pictures are
//! wanted (decoding on demand, `hub::demand`): every picture, keyframes only, or nothing.
//!
//! It decodes the camera's video feed (`hub::video`), not the source's packets: the units as
//! the feed keeps them (length-prefixed), with a decoder opened from the feed's avcC/hvcC
//! description. The feed's GOP is the camera's only one, and a warm-up decodes it; had the
//! decoder been opened from the source's parameters (Annex B extradata for RTSP), the GOP's
//! length-prefixed units would not parse, and feeding it both framings would leave its
//! references wrong for the units that follow.
//!
//! The session thread hands it every unit it pushes to the feed (a session read on the
//! camera's task hands it to the decode pool, which catches up with the feed instead). A snapshot of a camera that
//! is not decoding asks it, through the feed's [`FeedDecoder`] seam and on a blocking thread,
//! for the newest picture of the GOP: the same decoder warms up, and the session's decoding
//! goes on from there instead of decoding the GOP again. A mutex keeps the two in turn.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use tracing::warn;

use crate::hub::demand::{DecodeMode, Demand};
use crate::hub::video::{FeedDecoder, FeedPicture, VideoConfig, VideoFeed, VideoUnit};
use crate::hub::Camera;
use crate::media::clock::Stamp;
use crate::media::decode::{open_live, to_picture, Converter};
use crate::media::tier::Thinner;

/// Most units a warm-up decodes (a 40 s GOP at 25 fps): beyond it, waiting for the next
/// keyframe costs less than decoding the GOP so far. The feed bounds its GOP in bytes only,
/// for viewers, who are sent it rather than decode it here.
const MAX_WARM_UP: usize = 1000;

/// Stamps of the units last handed to the decoder, to give a picture its unit's stamp: more
/// than any reordering delay holds back (H.264 allows 16 frames).
const STAMPS: usize = 32;

/// The session thread's handle on the decoder. Dropped when the session ends: from then on a
/// snapshot gets nothing from it.
pub struct OnDemandDecoder {
    shared: Arc<Shared>,
    /// Pixel-format conversion for the session's pictures, kept out of the shared state so
    /// that a snapshot's warm-up, on another thread at the same time, builds its own.
    converter: Option<Converter>,
}

/// The decoder, shared by the session thread and the feed's seam.
struct Shared(Mutex<State>);

/// The decoder opened from one of the feed's configurations.
struct Opened {
    config: Arc<VideoConfig>,
    dec: ffmpeg::decoder::Video,
}

struct State {
    camera_id: String,
    demand: Arc<Demand>,
    /// `None` until the first unit (the feed's parameters may come only with it).
    opened: Option<Opened>,
    decoded: ffmpeg::frame::Video,
    errors: u32,
    /// What the decoder does now (it starts in full, until the session's first picture).
    mode: DecodeMode,
    /// When the last keyframe arrived, and the keyframe interval measured last (the larger of
    /// the last two, so one early keyframe does not make the rate look higher than it is).
    last_key_at: Option<Instant>,
    key_interval: Option<Duration>,
    key_measured: Option<Duration>,
    /// A picture came out of this session: from then on the decoder follows demand.
    made_picture: bool,
    /// The feed's sequence number of the newest unit the session handed over.
    fed: u64,
    /// That of the newest unit decoded. In full mode the decoder holds every unit since its
    /// GOP's keyframe up to this one, so a unit at or before it was decoded by a warm-up.
    decoded_to: u64,
    stamps: VecDeque<Stamp>,
    /// The session ended: nothing more is decoded for a snapshot.
    ended: bool,
}

impl OnDemandDecoder {
    pub fn new(camera_id: &str, demand: Arc<Demand>) -> Self {
        demand.set_mode(DecodeMode::Full);
        let state = State {
            camera_id: camera_id.to_string(),
            demand,
            opened: None,
            decoded: ffmpeg::frame::Video::empty(),
            errors: 0,
            mode: DecodeMode::Full,
            last_key_at: None,
            key_interval: None,
            key_measured: None,
            made_picture: false,
            fed: 0,
            decoded_to: 0,
            stamps: VecDeque::with_capacity(STAMPS),
            ended: false,
        };
        Self {
            shared: Arc::new(Shared(Mutex::new(state))),
            converter: None,
        }
    }

    /// The seam to register on the feed, for snapshots.
    pub fn seam(&self) -> Arc<dyn FeedDecoder> {
        self.shared.clone()
    }

    /// The session pushed a unit to `feed`: decoded as the demand asks, its pictures queued
    /// on `out`. A unit the feed refused (unreadable, no parameters yet) is not there to take.
    pub fn unit(&mut self, feed: &VideoFeed, out: &mut Vec<FeedPicture>) {
        if let Some(unit) = feed.newest() {
            self.take(&unit, feed, out);
        }
    }

    /// Every unit the session pushed to `feed` since the last one taken, in order (the decode
    /// pool's turn, which may come several units late): those of the feed's GOP, and its newest
    /// unit. Units of a GOP the feed has already replaced are gone; the decoder starts again at
    /// the keyframe that replaced it. `publish` takes the pictures of each unit before the next
    /// is taken, as on a session thread: a picture published after the decoder went cold would
    /// make its staleness look current.
    pub fn catch_up(
        &mut self,
        feed: &VideoFeed,
        out: &mut Vec<FeedPicture>,
        publish: &mut dyn FnMut(&mut Vec<FeedPicture>),
    ) {
        let fed = self.shared.lock().fed;
        let Some(newest) = feed.newest().filter(|n| n.seq > fed) else {
            return;
        };
        let mut units: Vec<Arc<VideoUnit>> =
            feed.gop().into_iter().filter(|u| u.seq > fed).collect();
        if units.last().is_none_or(|u| u.seq < newest.seq) {
            units.push(newest);
        }
        for unit in &units {
            self.take(unit, feed, out);
            publish(out);
        }
    }

    fn take(&mut self, unit: &Arc<VideoUnit>, feed: &VideoFeed, out: &mut Vec<FeedPicture>) {
        let conv = &mut self.converter;
        let mut st = self.shared.lock();
        if unit.seq <= st.fed {
            return;
        }
        st.fed = unit.seq;
        if unit.key {
            st.keyframe_arrived(Instant::now());
        }
        match (st.decode_wanted(), st.mode) {
            (DecodeMode::Off, _) => st.go_cold(),
            // Released after the session's first picture (below): the GOP again, from its
            // keyframe, with a new decoder.
            (DecodeMode::Full, DecodeMode::Full) if st.made_picture && st.opened.is_none() => {
                out.extend(st.warm_up(&feed.gop(), DecodeMode::Full, conv))
            }
            (DecodeMode::Full, DecodeMode::Full) => {
                st.decode(unit, false, conv, out);
                // The session's first picture is out and nobody wants more: the decoder is
                // freed now, not at the next unit, so that cameras starting together never all
                // hold one at once (a peak the allocator keeps long after). The mode turns off
                // at the next unit, after this picture is published.
                if st.decode_wanted() == DecodeMode::Off {
                    st.release();
                }
            }
            // From nothing or keyframes to every picture: the feed's GOP catches up at once.
            (DecodeMode::Full, _) => out.extend(st.warm_up(&feed.gop(), DecodeMode::Full, conv)),
            // A thumbnail lane appeared on an idle camera: the newest picture now, keyframes
            // from then on.
            (DecodeMode::Keyframes, DecodeMode::Off) => {
                out.extend(st.warm_up(&feed.gop(), DecodeMode::Keyframes, conv))
            }
            (DecodeMode::Keyframes, _) => {
                st.set_mode(DecodeMode::Keyframes);
                if unit.key {
                    st.decode(unit, true, conv, out);
                }
            }
        }
    }

    /// The end of the stream: the last pictures are still inside a decoder that decodes all.
    pub fn drain(&mut self, out: &mut Vec<FeedPicture>) {
        let conv = &mut self.converter;
        let mut st = self.shared.lock();
        if st.mode != DecodeMode::Full {
            return;
        }
        let State {
            opened,
            decoded,
            stamps,
            ..
        } = &mut *st;
        if let Some(o) = opened.as_mut() {
            let _ = o.dec.send_eof();
            while o.dec.receive_frame(decoded).is_ok() {
                out.extend(picture(decoded, stamps, conv));
            }
        }
    }
}

impl Drop for OnDemandDecoder {
    fn drop(&mut self) {
        self.shared.lock().ended = true;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic mid-decode leaves a decoder FFmpeg can still flush: keep going.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FeedDecoder for Shared {
    fn newest_picture(&self, gop: &[Arc<VideoUnit>]) -> Option<FeedPicture> {
        let mut st = self.lock();
        if st.ended {
            return None;
        }
        // A snapshot wants the newest picture, and the next ones within its linger time.
        st.warm_up(gop, DecodeMode::Full, &mut None)
    }
}

/// The frame in `decoded` as a picture, stamped as the unit whose pts it carries (found among
/// `stamps`; else at its pts, arrived with the newest unit).
fn picture(
    decoded: &mut ffmpeg::frame::Video,
    stamps: &VecDeque<Stamp>,
    conv: &mut Option<Converter>,
) -> Option<FeedPicture> {
    let pts = decoded.pts().or(decoded.timestamp());
    let stamp = match pts {
        Some(pts) => stamps.iter().rev().find(|s| s.pts_us == pts).copied(),
        None => None,
    }
    .or_else(|| {
        stamps.back().map(|s| Stamp {
            pts_us: pts.unwrap_or(s.pts_us),
            ..*s
        })
    })?;
    let (width, height, picture) = to_picture(decoded, conv)?;
    Some(FeedPicture {
        width,
        height,
        picture,
        stamp,
    })
}

/// A unit as the decoder takes it: its pts on the camera's clock, which FFmpeg carries to the
/// frame it decodes to, through reordering.
fn packet_of(unit: &VideoUnit) -> ffmpeg::Packet {
    let mut p = ffmpeg::Packet::copy(&unit.data);
    p.set_pts(Some(unit.stamp.pts_us));
    if unit.key {
        p.set_flags(ffmpeg::codec::packet::Flags::KEY);
    }
    p
}

impl State {
    /// What the decoder should do with the next unit: everything until the session's first
    /// picture; after that, what the demand asks for.
    fn decode_wanted(&self) -> DecodeMode {
        if !self.made_picture {
            return DecodeMode::Full;
        }
        self.demand
            .mode(self.key_interval.map(|i| 1.0 / i.as_secs_f64()))
    }

    /// A keyframe arrived at `at`: measures the keyframe interval.
    fn keyframe_arrived(&mut self, at: Instant) {
        if let Some(prev) = self.last_key_at.replace(at) {
            let gap = at.saturating_duration_since(prev);
            // Two keyframes in a row (a camera's parameter sets, a broken GOP) say nothing.
            if gap >= Duration::from_millis(50) {
                let last = self.key_measured.replace(gap);
                self.key_interval = Some(last.map_or(gap, |l| l.max(gap)));
            }
        }
    }

    fn set_mode(&mut self, mode: DecodeMode) {
        if self.mode != mode {
            self.mode = mode;
            self.demand.set_mode(mode);
        }
    }

    /// Stops decoding (if it ran): units are only kept by the feed from now on.
    fn go_cold(&mut self) {
        if self.mode == DecodeMode::Off {
            return;
        }
        self.set_mode(DecodeMode::Off);
        self.demand.set_cold();
        self.release();
    }

    /// Closes the decoder. Its references are of no use to a warm-up, which starts at a
    /// keyframe, and a flush keeps the frame pools it allocated (several pictures: about
    /// 1.2 MB at 320x180, measured): closed while idle, opened again by the next
    /// warm-up. What a camera nobody watches holds is its GOP.
    fn release(&mut self) {
        self.opened = None;
        self.decoded = ffmpeg::frame::Video::empty();
    }

    /// The decoder for `config`: opened anew when the feed's parameters changed (its
    /// references are of the old ones). `None` when FFmpeg cannot open one.
    fn decoder_for(&mut self, config: &Arc<VideoConfig>) -> Option<&mut ffmpeg::decoder::Video> {
        if self
            .opened
            .as_ref()
            .is_none_or(|o| o.config.generation != config.generation)
        {
            self.opened = match open_live(&config.params) {
                Ok(dec) => Some(Opened {
                    config: config.clone(),
                    dec,
                }),
                Err(e) => {
                    self.errors += 1;
                    if self.errors.is_power_of_two() {
                        warn!(error = %e, count = self.errors, "cannot open a decoder");
                    }
                    None
                }
            };
        }
        self.opened.as_mut().map(|o| &mut o.dec)
    }

    fn remember(&mut self, stamp: Stamp) {
        if self.stamps.len() == STAMPS {
            self.stamps.pop_front();
        }
        self.stamps.push_back(stamp);
    }

    fn decoded_pictures(&mut self, n: u64, t0: Instant) {
        crate::obs::metrics::observe_decode(&self.camera_id, t0.elapsed());
        if n > 0 {
            self.made_picture = true;
            self.demand.count_decoded(n);
        }
    }

    fn refused(&mut self, e: ffmpeg::Error) {
        // Corrupt units happen on real networks: skip them, keep the session.
        self.errors += 1;
        if self.errors.is_power_of_two() {
            warn!(error = %e, count = self.errors, "decoder refused a unit");
        }
    }

    /// Decodes `unit` and queues what it makes. In the stream (every picture), a unit a
    /// warm-up decoded already is passed over. `alone`: a keyframe decoded on its own (what
    /// FFmpeg's `skip_frame = AVDISCARD_NONKEY` does, without even handing it the other
    /// units), drained at once, since no later unit will push it out of a decoder that
    /// reorders, then reset for the next one.
    fn decode(
        &mut self,
        unit: &VideoUnit,
        alone: bool,
        conv: &mut Option<Converter>,
        out: &mut Vec<FeedPicture>,
    ) {
        if !alone && unit.seq <= self.decoded_to {
            return;
        }
        self.decoded_to = unit.seq;
        self.remember(unit.stamp);
        let t0 = Instant::now();
        if self.decoder_for(&unit.config).is_none() {
            return;
        }
        let State {
            opened,
            decoded,
            stamps,
            ..
        } = self;
        let Some(o) = opened.as_mut() else {
            return;
        };
        if alone {
            o.dec.flush();
        }
        let sent = o.dec.send_packet(&packet_of(unit));
        let mut n = 0;
        if sent.is_ok() {
            if alone {
                let _ = o.dec.send_eof();
            }
            while o.dec.receive_frame(decoded).is_ok() {
                n += 1;
                out.extend(picture(decoded, stamps, conv));
            }
        }
        if alone {
            // After a drain the decoder takes units again only once flushed.
            o.dec.flush();
        }
        if let Err(e) = sent {
            self.refused(e);
        }
        self.decoded_pictures(n, t0);
    }

    /// Demand is back (or wants more): decodes the feed's `gop` (keyframe first) up to its
    /// newest unit, then runs in `mode`. Only the newest picture is returned: the keyframe's
    /// is old by a GOP. A decoder already in step with the GOP decodes only the units it has
    /// not had. `None`, leaving the mode as it was, when there is nothing to decode: no whole
    /// GOP kept, or one past [`MAX_WARM_UP`] (the next keyframe starts one), a GOP older than
    /// what the session handed over (a snapshot's, overtaken), or one decoded already.
    fn warm_up(
        &mut self,
        gop: &[Arc<VideoUnit>],
        mode: DecodeMode,
        conv: &mut Option<Converter>,
    ) -> Option<FeedPicture> {
        let (first, newest) = (gop.first()?, gop.last()?);
        let full = self.mode == DecodeMode::Full;
        if newest.seq < self.fed || (full && newest.seq <= self.decoded_to) {
            return None;
        }
        let t0 = Instant::now();
        let in_step = full
            && self.decoded_to >= first.seq
            && self
                .opened
                .as_ref()
                .is_some_and(|o| o.config.generation == first.config.generation);
        if !in_step && gop.len() > MAX_WARM_UP {
            return None;
        }
        let from = if in_step {
            gop.partition_point(|u| u.seq <= self.decoded_to)
        } else {
            // What the decoder held refers to pictures long gone.
            if let Some(o) = self.opened.as_mut() {
                o.dec.flush();
            }
            0
        };
        self.decoder_for(&first.config)?;
        let mut n = 0;
        let mut last = None;
        for unit in &gop[from..] {
            self.remember(unit.stamp);
            let Some(o) = self.opened.as_mut() else {
                break;
            };
            if let Err(e) = o.dec.send_packet(&packet_of(unit)) {
                self.refused(e);
                continue;
            }
            while o.dec.receive_frame(&mut self.decoded).is_ok() {
                n += 1;
                // Taken out: the next receive clears the frame it is given, even when it fails.
                last = Some(std::mem::replace(
                    &mut self.decoded,
                    ffmpeg::frame::Video::empty(),
                ));
            }
        }
        self.decoded_to = newest.seq;
        let out = last.and_then(|mut frame| picture(&mut frame, &self.stamps, conv));
        self.decoded_pictures(n, t0);
        if mode == DecodeMode::Keyframes {
            // Reset for keyframes decoded one at a time from here on.
            if let Some(o) = self.opened.as_mut() {
                o.dec.flush();
            }
        }
        self.set_mode(mode);
        out
    }
}

/// Publishes the pictures the on-demand decoder made, within the camera's rate cap. They carry
/// their units' stamps: already on the camera's clock. A camera whose decoder went cold lets go
/// of its picture (`Camera::forget_cold_picture`).
pub(super) fn publish_decoded(
    cam: &Camera,
    decoded: &mut Vec<FeedPicture>,
    thinner: &mut Thinner,
    now: tokio::time::Instant,
) {
    for p in decoded.drain(..) {
        if thinner.admit(now) {
            cam.publish(p.width, p.height, p.picture, p.stamp);
        }
    }
    if cam.demand().is_cold() {
        cam.forget_cold_picture();
    }
}

#[cfg(test)]
#[path = "on_demand_tests.rs"]
mod tests;
