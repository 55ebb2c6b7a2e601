//! A camera's picture decoder and what it does: every picture, keyframes only, or nothing
//! (decoding on demand, `hub::demand`), with the current GOP kept for the next warm-up, and
//! the conversion of decoded frames into pictures libjpeg-turbo takes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;
use tracing::warn;

use super::kept_gop::KeptGop;
use crate::hub::demand::{DecodeMode, Demand};
use crate::media::decode::{to_picture, Converter};
use crate::media::frame::Picture;

/// Pictures ready to publish: width, height, picture.
pub type Pending = VecDeque<(u32, u32, Picture, Option<i64>)>;

/// A decoded frame as a picture to publish, with the source timestamp of its packet (the
/// decoder carries it through reordering).
fn picture_of(
    frame: &mut ffmpeg::frame::Video,
    converter: &mut Option<Converter>,
) -> Option<(u32, u32, Picture, Option<i64>)> {
    let ts = frame.timestamp().or(frame.pts());
    to_picture(frame, converter).map(|(w, h, p)| (w, h, p, ts))
}

/// One session's decoder.
pub struct PictureDecoder {
    camera_id: String,
    dec: ffmpeg::decoder::Video,
    converter: Option<Converter>,
    decoded: ffmpeg::frame::Video,
    errors: u32,
    /// Who needs pictures; `None` until the worker hands it over (then: always decode).
    demand: Option<Arc<Demand>>,
    /// Whether this decoder may stop: a network H.264/H.265 stream (its access units reach
    /// video viewers undecoded). Local sources and other codecs always decode.
    can_idle: bool,
    /// What the decoder does now (it starts in full, until the session's first picture).
    mode: DecodeMode,
    /// When the last keyframe arrived, and the keyframe interval measured last (the larger of
    /// the last two, so one early keyframe does not make the rate look higher than it is).
    last_key_at: Option<Instant>,
    key_interval: Option<Duration>,
    key_measured: Option<Duration>,
    /// A picture came out of this session: from then on the decoder follows demand.
    made_picture: bool,
    /// Decoders that can idle: the current GOP, for the next warm-up.
    kept: KeptGop,
}

impl PictureDecoder {
    pub fn new(camera_id: &str, dec: ffmpeg::decoder::Video, can_idle: bool) -> Self {
        Self {
            camera_id: camera_id.to_string(),
            dec,
            converter: None,
            decoded: ffmpeg::frame::Video::empty(),
            errors: 0,
            demand: None,
            can_idle,
            mode: DecodeMode::Full,
            last_key_at: None,
            key_interval: None,
            key_measured: None,
            made_picture: false,
            kept: KeptGop::default(),
        }
    }

    pub fn set_demand(&mut self, demand: Arc<Demand>) {
        demand.set_mode(self.mode);
        self.demand = Some(demand);
    }

    /// One packet of the video stream, in stream order: decoded as the demand asks, kept.
    pub fn feed(&mut self, packet: ffmpeg::Packet, out: &mut Pending) {
        match (self.decode_wanted(), self.mode) {
            (DecodeMode::Off, _) => {
                self.go_cold();
                self.keep(packet);
            }
            // From nothing or keyframes to every picture: the kept GOP catches up at once.
            (DecodeMode::Full, DecodeMode::Off | DecodeMode::Keyframes) => {
                self.keep(packet);
                self.warm_up(DecodeMode::Full, out);
            }
            // A thumbnail lane appeared on an idle camera: the newest picture now, keyframes
            // from then on.
            (DecodeMode::Keyframes, DecodeMode::Off) => {
                self.keep(packet);
                self.warm_up(DecodeMode::Keyframes, out);
            }
            (DecodeMode::Keyframes, _) => {
                self.set_mode(DecodeMode::Keyframes);
                if packet.is_key() {
                    self.decode_keyframe(&packet, out);
                }
                self.keep(packet);
            }
            (DecodeMode::Full, DecodeMode::Full) => {
                self.decode(&packet, out);
                self.keep(packet);
            }
        }
    }

    /// The end of a file: its last pictures are still inside the decoder.
    pub fn drain(&mut self, out: &mut Pending) {
        if self.mode != DecodeMode::Full {
            return;
        }
        let _ = self.dec.send_eof();
        while self.dec.receive_frame(&mut self.decoded).is_ok() {
            out.extend(picture_of(&mut self.decoded, &mut self.converter));
        }
    }

    /// Keeps `packet` in the current GOP (sources that can idle), whatever the decoder did
    /// with it, so that a warm-up need not wait for the next keyframe. Moved, not cloned: a
    /// packet's clone copies its data.
    fn keep(&mut self, packet: ffmpeg::Packet) {
        if self.can_idle {
            self.kept.keep(packet);
        }
    }

    /// Decodes one packet in stream order and queues the pictures it makes.
    fn decode(&mut self, packet: &ffmpeg::Packet, out: &mut Pending) {
        let dec = &mut self.dec;
        let t0 = Instant::now();
        if let Err(e) = dec.send_packet(packet) {
            // Corrupt packets happen on real networks: skip them, keep the session.
            self.errors += 1;
            if self.errors.is_power_of_two() {
                warn!(error = %e, count = self.errors, "decoder refused a packet");
            }
            return;
        }
        let mut n = 0;
        while dec.receive_frame(&mut self.decoded).is_ok() {
            n += 1;
            out.extend(picture_of(&mut self.decoded, &mut self.converter));
        }
        crate::obs::metrics::observe_decode(&self.camera_id, t0.elapsed());
        self.decoded_pictures(n);
    }

    /// Decodes a keyframe on its own (what FFmpeg's `skip_frame = AVDISCARD_NONKEY` does,
    /// without even handing it the other packets): drained at once, since no later packet
    /// will push it out of a decoder that reorders, then reset for the next one.
    fn decode_keyframe(&mut self, packet: &ffmpeg::Packet, out: &mut Pending) {
        let dec = &mut self.dec;
        let t0 = Instant::now();
        dec.flush();
        let mut n = 0;
        if dec.send_packet(packet).is_ok() {
            let _ = dec.send_eof();
            while dec.receive_frame(&mut self.decoded).is_ok() {
                n += 1;
                out.extend(picture_of(&mut self.decoded, &mut self.converter));
            }
        } else {
            self.errors += 1;
        }
        // After a drain the decoder takes packets again only once flushed.
        dec.flush();
        crate::obs::metrics::observe_decode(&self.camera_id, t0.elapsed());
        self.decoded_pictures(n);
    }

    /// A keyframe arrived at `at`: measures the keyframe interval.
    pub fn keyframe_arrived(&mut self, at: Instant) {
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
            if let Some(d) = self.demand.as_ref() {
                d.set_mode(mode);
            }
        }
    }

    /// What the decoder should do with the next packet: everything for sources that cannot
    /// idle and until the session's first picture; after that, what the demand asks for.
    fn decode_wanted(&self) -> DecodeMode {
        match self.demand.as_ref() {
            Some(d) if self.can_idle && self.made_picture => {
                d.mode(self.key_interval.map(|i| 1.0 / i.as_secs_f64()))
            }
            _ => DecodeMode::Full,
        }
    }

    fn decoded_pictures(&mut self, n: u64) {
        if n > 0 {
            self.made_picture = true;
            if let Some(d) = self.demand.as_ref() {
                d.count_decoded(n);
            }
        }
    }

    /// Stops decoding (if it ran): packets are kept, not decoded, from now on.
    fn go_cold(&mut self) {
        if self.mode == DecodeMode::Off {
            return;
        }
        self.set_mode(DecodeMode::Off);
        if let Some(d) = self.demand.as_ref() {
            d.set_cold();
        }
    }

    /// Demand is back (or wants more): decodes the kept GOP, keyframe first, and queues only
    /// its newest picture (the keyframe's is old by a GOP), then runs in `mode`. Without a
    /// whole GOP kept (it outgrew its bound) it waits for the next keyframe.
    fn warm_up(&mut self, mode: DecodeMode, out: &mut Pending) {
        if self.kept.is_empty() {
            return;
        }
        let dec = &mut self.dec;
        let t0 = Instant::now();
        // What the decoder held refers to pictures long gone.
        dec.flush();
        let mut n = 0;
        let mut last = None;
        for packet in self.kept.packets() {
            if dec.send_packet(packet).is_err() {
                self.errors += 1;
                continue;
            }
            while dec.receive_frame(&mut self.decoded).is_ok() {
                n += 1;
                // Taken out: the next receive clears the frame it is given, even when it fails.
                last = Some(std::mem::replace(
                    &mut self.decoded,
                    ffmpeg::frame::Video::empty(),
                ));
            }
        }
        if let Some(mut frame) = last {
            out.extend(picture_of(&mut frame, &mut self.converter));
        }
        crate::obs::metrics::observe_decode(&self.camera_id, t0.elapsed());
        self.decoded_pictures(n);
        if mode == DecodeMode::Keyframes {
            // Reset for keyframes decoded one at a time from here on.
            self.dec.flush();
        }
        self.set_mode(mode);
    }
}
