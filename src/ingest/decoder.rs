//! The decoder of a source that decodes every picture (local sources, codecs other than
//! H.264/H.265, the probe): FFmpeg packets in, pictures with their packet's timestamp out.
//! Network H.264/H.265 cameras decode on demand instead, from their video feed (`on_demand`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use tracing::warn;

use crate::hub::demand::{DecodeMode, Demand};
use crate::media::decode::{to_picture, Converter};
use crate::media::frame::Picture;

/// Pictures ready to publish: width, height, picture, source timestamp.
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

/// One session's decoder, decoding every packet.
pub struct PictureDecoder {
    camera_id: String,
    dec: ffmpeg::decoder::Video,
    converter: Option<Converter>,
    decoded: ffmpeg::frame::Video,
    errors: u32,
    /// Where the pictures decoded are counted; `None` until the worker hands it over.
    demand: Option<Arc<Demand>>,
}

impl PictureDecoder {
    pub fn new(camera_id: &str, dec: ffmpeg::decoder::Video) -> Self {
        Self {
            camera_id: camera_id.to_string(),
            dec,
            converter: None,
            decoded: ffmpeg::frame::Video::empty(),
            errors: 0,
            demand: None,
        }
    }

    /// The camera's demand: told that this decoder decodes every picture, whatever is asked.
    pub fn set_demand(&mut self, demand: Arc<Demand>) {
        demand.set_mode(DecodeMode::Full);
        self.demand = Some(demand);
    }

    /// Decodes one packet in stream order and queues the pictures it makes.
    pub fn decode(&mut self, packet: &ffmpeg::Packet, out: &mut Pending) {
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
        if let Some(d) = self.demand.as_ref().filter(|_| n > 0) {
            d.count_decoded(n);
        }
    }

    /// The end of a file: its last pictures are still inside the decoder.
    pub fn drain(&mut self, out: &mut Pending) {
        let _ = self.dec.send_eof();
        while self.dec.receive_frame(&mut self.decoded).is_ok() {
            out.extend(picture_of(&mut self.decoded, &mut self.converter));
        }
    }
}
