//! The video feed of one H.264/H.265 camera: the camera's own access units, length-prefixed
//! (AVCC/HVCC) once for every viewer, the current GOP for viewers who join mid-GOP, the decoder
//! parameters (codec string, size, avcC/hvcC description), and a latest-first broadcast.
//!
//! Packets reach viewers as they arrive, without waiting for (or needing) the decoder. The
//! broadcast is bounded in units; a viewer that lags past it resumes at the next keyframe (the
//! session decides). The GOP is bounded in bytes (`media::gop`). Knows nothing of viewers.
//!
//! The GOP here is the camera's only one: the ingest decoder of a camera that decodes on
//! demand takes its units from here and warms up from this GOP, and registers itself as the
//! feed's [`FeedDecoder`] so that a snapshot of a camera not decoding asks it for a picture
//! (the hub never decodes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::media::clock::Stamp;
use crate::media::frame::Picture;
use crate::media::gop::{GopCache, DEFAULT_MAX_BYTES};
use crate::media::h26x::{Codec, VideoParams};
use crate::media::nal::{self, NalFormat};

/// Units buffered in the broadcast: about 5 s at 25 fps. A viewer further behind than this
/// skips to the next keyframe, so its cost stays one shared buffer, not a queue of its own.
const BROADCAST_UNITS: usize = 128;

/// Decoder parameters with a generation, so that a viewer knows when to reconfigure.
#[derive(Debug)]
pub struct VideoConfig {
    pub params: Arc<VideoParams>,
    pub generation: u64,
}

/// One access unit as forwarded to viewers.
#[derive(Debug)]
pub struct VideoUnit {
    /// Per camera, increasing by one per unit while camwall runs.
    pub seq: u64,
    pub key: bool,
    /// Length-prefixed NAL units (4-byte lengths), what WebCodecs takes with a description.
    pub data: Bytes,
    /// Its presentation time on the camera's clock and its arrival time.
    pub stamp: Stamp,
    /// The parameters this unit decodes with.
    pub config: Arc<VideoConfig>,
    /// The unit as a viewer's wire message, built by the first viewer and shared by the rest
    /// (a unit goes to every video viewer of the camera: one header, one copy).
    wire: OnceLock<Bytes>,
    /// The unit as RTP payloads, built by the first WebRTC viewer and shared by the rest,
    /// which only number and encrypt them.
    rtp: OnceLock<Arc<[Arc<[u8]>]>>,
}

impl VideoUnit {
    pub fn new(seq: u64, key: bool, data: Bytes, stamp: Stamp, config: Arc<VideoConfig>) -> Self {
        Self {
            seq,
            key,
            data,
            stamp,
            config,
            wire: OnceLock::new(),
            rtp: OnceLock::new(),
        }
    }

    /// The unit's RTP payloads, built once by `build` for every WebRTC viewer.
    pub fn rtp(&self, build: impl FnOnce(&Self) -> Vec<Arc<[u8]>>) -> Arc<[Arc<[u8]>]> {
        self.rtp.get_or_init(|| build(self).into()).clone()
    }

    /// The wire message, built once by `build` for every viewer.
    pub fn wire(&self, build: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| build(self)).clone()
    }
}

/// A picture decoded from the feed's units, with its unit's place on the camera's clock.
pub struct FeedPicture {
    pub width: u32,
    pub height: u32,
    pub picture: Picture,
    pub stamp: Stamp,
}

/// The decoder side of a feed: the session's decoder of a camera that decodes on demand,
/// registered by ingest for the session ([`VideoFeed::set_decoder`]). The hub asks it "down"
/// through this trait, never knowing FFmpeg or ingest.
pub trait FeedDecoder: Send + Sync {
    /// The newest picture of `gop` (the feed's current GOP, keyframe first), decoded by the
    /// session's own decoder, which then goes on decoding from there (so the source does not
    /// decode the GOP again). Blocking, a GOP's decode: call it off the async workers. `None`
    /// when nothing decoded, the session ended, or the decoder is past this GOP already (its
    /// pictures are being published).
    fn newest_picture(&self, gop: &[Arc<VideoUnit>]) -> Option<FeedPicture>;
}

/// A snapshot's request to the decoder side: the session's decoder and the feed's GOP.
pub struct ColdDecode {
    pub decoder: Arc<dyn FeedDecoder>,
    /// The current GOP, keyframe first.
    pub gop: Vec<Arc<VideoUnit>>,
}

impl ColdDecode {
    /// The GOP's newest picture ([`FeedDecoder::newest_picture`]). Blocking.
    pub fn run(&self) -> Option<FeedPicture> {
        self.decoder.newest_picture(&self.gop)
    }
}

/// What a new viewer starts from: the parameters, the GOP up to the newest unit (keyframe
/// first), and a receiver that continues right after it (no gap, no repeat).
pub struct VideoStart {
    pub config: Option<Arc<VideoConfig>>,
    pub gop: Vec<Arc<VideoUnit>>,
    pub rx: broadcast::Receiver<Arc<VideoUnit>>,
}

struct Session {
    gop: GopCache,
    /// The source's NAL framing (RTSP gives Annex B, MP4 files length-prefixed).
    input: NalFormat,
    config: Option<Arc<VideoConfig>>,
    /// The forwarded units of the current GOP (the cache keeps the bitstream view).
    units: Vec<Arc<VideoUnit>>,
    /// The unit forwarded last, in the GOP or not: what the session's decoder takes next.
    newest: Option<Arc<VideoUnit>>,
    /// The session's decoder, when it decodes on demand (dropped with the session).
    decoder: Option<Arc<dyn FeedDecoder>>,
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    seq: u64,
    generation: u64,
    /// The last configuration handed out, kept across sessions: a camera that reconnects with
    /// the same parameters keeps its generation, so viewers do not reconfigure their decoders.
    last_config: Option<Arc<VideoConfig>>,
    units_in: u64,
    bytes_in: u64,
    units_bad: u64,
    gops_too_long_before: u64,
}

impl State {
    fn config_for(&mut self, params: Arc<VideoParams>) -> Arc<VideoConfig> {
        Self::config_with(&mut self.generation, &mut self.last_config, params)
    }

    /// The configuration for `params`: the last one when the parameters are the same, else a
    /// new generation.
    fn config_with(
        generation: &mut u64,
        last: &mut Option<Arc<VideoConfig>>,
        params: Arc<VideoParams>,
    ) -> Arc<VideoConfig> {
        if let Some(c) = last.as_ref().filter(|c| c.params == params) {
            return c.clone();
        }
        *generation += 1;
        let c = Arc::new(VideoConfig {
            params,
            generation: *generation,
        });
        *last = Some(c.clone());
        c
    }
}

/// Counters for the status API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VideoStats {
    pub codec: Option<&'static str>,
    pub codec_string: Option<String>,
    pub units_in: u64,
    /// Bytes of those units as they arrived (a client divides by time for the bitrate).
    pub bytes_in: u64,
    pub units_bad: u64,
    pub gops_too_long: u64,
    pub gop_units: usize,
    pub gop_bytes: usize,
}

/// One camera's video feed.
pub struct VideoFeed {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<VideoUnit>>,
    /// Receivers that record (the replay ring), not counted as viewers.
    recorders: Arc<AtomicUsize>,
}

impl Default for VideoFeed {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            tx: broadcast::channel(BROADCAST_UNITS).0,
            recorders: Arc::default(),
        }
    }
}

/// Marks one receiver of a feed or lane as a recorder while it lives (see
/// [`VideoFeed::viewers`]).
pub struct Recorder(Arc<AtomicUsize>);

impl Recorder {
    pub(super) fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl VideoFeed {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session of the camera: `codec`, the framing of its packets, and the stream's
    /// extradata (parameters out of band, as RTSP's SDP gives them; may be empty).
    pub fn start(&self, codec: Codec, input: NalFormat, extradata: &[u8]) {
        let mut st = self.state();
        let mut gop = GopCache::new(codec, NalFormat::LengthPrefixed, DEFAULT_MAX_BYTES);
        let changed = !extradata.is_empty() && gop.set_extradata(extradata).unwrap_or(false);
        let config = if changed {
            gop.params().cloned().map(|p| st.config_for(p))
        } else {
            None
        };
        if let Some(old) = st.session.take() {
            st.gops_too_long_before += old.gop.gops_too_long();
        }
        st.session = Some(Session {
            gop,
            input,
            config,
            units: Vec::new(),
            newest: None,
            decoder: None,
        });
    }

    /// Registers the current session's decoder, for [`VideoFeed::cold_decode`]; it goes
    /// with the session. Ignored without a session.
    pub fn set_decoder(&self, decoder: Arc<dyn FeedDecoder>) {
        if let Some(s) = self.state().session.as_mut() {
            s.decoder = Some(decoder);
        }
    }

    /// The session's decoder with the current GOP to decode, taken together so that they
    /// belong to one session; `None` without a registered decoder.
    pub fn cold_decode(&self) -> Option<ColdDecode> {
        let st = self.state();
        let s = st.session.as_ref()?;
        Some(ColdDecode {
            decoder: s.decoder.clone()?,
            gop: s.units.clone(),
        })
    }

    /// The current GOP, keyframe first (empty while none is whole: before the first
    /// keyframe, or after one outgrew its bound, until the next).
    pub fn gop(&self) -> Vec<Arc<VideoUnit>> {
        self.state()
            .session
            .as_ref()
            .map_or_else(Vec::new, |s| s.units.clone())
    }

    /// The unit forwarded last in this session, in the GOP or not.
    pub fn newest(&self) -> Option<Arc<VideoUnit>> {
        self.state().session.as_ref()?.newest.clone()
    }

    /// The session ended: no GOP is served from a source that is gone.
    pub fn stop(&self) {
        let mut st = self.state();
        if let Some(old) = st.session.take() {
            st.gops_too_long_before += old.gop.gops_too_long();
        }
    }

    /// The codec of the current session, if it is H.264/H.265.
    pub fn codec(&self) -> Option<Codec> {
        self.state().session.as_ref().map(|s| s.gop.codec())
    }

    /// [`VideoFeed::push_unit`] from a slice, stamped 40 ms after the last unit (tests feed
    /// fixtures this way).
    #[cfg(test)]
    pub fn push(&self, data: &[u8]) {
        let pts = self.state().seq as i64 * 40_000;
        let _ = self.push_unit(Bytes::copy_from_slice(data), Stamp::now(pts));
    }

    /// Viewers (and cluster relays) receiving this camera's video units now; the replay
    /// ring's writer is not one.
    pub fn viewers(&self) -> usize {
        self.tx
            .receiver_count()
            .saturating_sub(self.recorders.load(Ordering::Relaxed))
    }

    /// Counts a receiver as a recorder until the guard is dropped.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.recorders.clone())
    }

    /// One access unit from the source, with its place on the camera's clock (a unit relayed
    /// from the node that ingests the camera keeps that node's stamp). Converted to
    /// length-prefixed framing once, kept in the GOP, and sent to viewers; an unreadable unit
    /// is counted and dropped. Answers whether it was a keyframe (`None`: not taken).
    pub fn push_unit(&self, data: Bytes, stamp: Stamp) -> Option<bool> {
        let mut st = self.state();
        let st = &mut *st;
        let session = st.session.as_mut()?;
        st.units_in += 1;
        st.bytes_in += data.len() as u64;
        let data = match session.input {
            // Already what viewers take: forwarded without a copy.
            NalFormat::LengthPrefixed => data,
            from => match nal::convert(from, NalFormat::LengthPrefixed, &data) {
                Ok(v) => Bytes::from(v),
                Err(_) => {
                    st.units_bad += 1;
                    return None;
                }
            },
        };
        st.seq += 1;
        let seq = st.seq;
        let pushed = match session.gop.push(data.clone(), seq, stamp.pts_us) {
            Ok(p) => p,
            Err(_) => {
                st.units_bad += 1;
                session.units.clear();
                return None;
            }
        };
        if pushed.params_changed || session.config.is_none() {
            if let Some(p) = session.gop.params().cloned() {
                session.config = Some(State::config_with(
                    &mut st.generation,
                    &mut st.last_config,
                    p,
                ));
            }
        }
        // Without parameters nobody can decode: nothing goes out yet.
        let Some(config) = session.config.clone() else {
            return Some(pushed.key);
        };
        let unit = Arc::new(VideoUnit::new(seq, pushed.key, data, stamp, config));
        if pushed.key || !pushed.kept {
            session.units.clear();
        }
        if pushed.kept {
            session.units.push(unit.clone());
        }
        session.newest = Some(unit.clone());
        let _ = self.tx.send(unit);
        Some(pushed.key)
    }

    /// Starts a viewer: the current GOP and a receiver for what follows it.
    pub fn subscribe(&self) -> VideoStart {
        // Under the state lock: `push` sends under it too, so the receiver starts exactly
        // after the last unit of the snapshot.
        let st = self.state();
        let (config, gop) = match st.session.as_ref() {
            Some(s) => (s.config.clone(), s.units.clone()),
            None => (None, Vec::new()),
        };
        VideoStart {
            config,
            gop,
            rx: self.tx.subscribe(),
        }
    }

    pub fn stats(&self) -> VideoStats {
        let st = self.state();
        let s = st.session.as_ref();
        VideoStats {
            codec: s.map(|s| s.gop.codec().name()),
            codec_string: s
                .and_then(|s| s.config.as_ref())
                .map(|c| c.params.codec_string.clone()),
            units_in: st.units_in,
            bytes_in: st.bytes_in,
            units_bad: st.units_bad,
            gops_too_long: st.gops_too_long_before + s.map_or(0, |s| s.gop.gops_too_long()),
            gop_units: s.map_or(0, |s| s.units.len()),
            gop_bytes: s.map_or(0, |s| s.gop.bytes()),
        }
    }
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
