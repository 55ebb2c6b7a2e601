//! The floor: decode a clip and JPEG-encode every frame once with camwall's own code and no
//! server, the cost every scenario is compared against. The only module that calls into the
//! camwall library: if its frame or JPEG modules move, the two `use` lines below change.

use std::path::Path;
use std::time::Instant;

use camwall::media::frame::{subsamp_of, DecodedVideo};
use camwall::media::jpeg::encode_planes;
use ffmpeg_next as ffmpeg;

use crate::procfs::cpu_ticks;

/// One JPEG encode of a decoded frame, as camwall does it (limited range expanded).
fn encode(f: &ffmpeg::frame::Video, quality: u8) {
    let (ss, full) = subsamp_of(f.format()).expect("yuv");
    let v = DecodedVideo::new(f.clone(), ss, !full);
    let j = encode_planes(&v.planes(), quality, 1).unwrap();
    std::hint::black_box(j);
}

/// Decodes `clip` and encodes up to `max_frames` frames at `quality` on one thread; returns
/// CPU ms per frame.
pub fn floor_ms_per_frame(clip: &Path, quality: u8, max_frames: usize) -> f64 {
    camwall::init_ffmpeg().expect("ffmpeg");
    let mut input = ffmpeg::format::input(&clip).expect("open clip");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("video");
    let idx = stream.index();
    let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).unwrap();
    ctx.set_threading(ffmpeg::threading::Config {
        kind: ffmpeg::threading::Type::Slice,
        count: 1,
        ..Default::default()
    });
    let mut dec = ctx.decoder().video().unwrap();
    let ticks0 = cpu_ticks(std::process::id());
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut frame = ffmpeg::frame::Video::empty();
    for (s, packet) in input.packets() {
        if s.index() != idx {
            continue;
        }
        let _ = dec.send_packet(&packet);
        while dec.receive_frame(&mut frame).is_ok() {
            encode(&frame, quality);
            n += 1;
        }
        if n >= max_frames {
            break;
        }
    }
    let cpu_s = (cpu_ticks(std::process::id()) - ticks0) as f64 / 100.0;
    // Short runs round to ticks: fall back to wall time on one thread, which is CPU time here.
    let secs = if cpu_s > 0.5 {
        cpu_s
    } else {
        t0.elapsed().as_secs_f64()
    };
    secs * 1000.0 / n.max(1) as f64
}

/// A raw H.264 clip's bytes per second when served at `fps`: its size over its access units'
/// duration (the RTSP test server loops the file as is, so this is the camera's bitrate).
pub fn clip_bytes_per_s(clip: &Path, fps: f64) -> f64 {
    let bytes = std::fs::metadata(clip).map_or(0, |m| m.len());
    let mut input = ffmpeg::format::input(&clip).expect("open clip");
    let units = input.packets().count();
    bytes as f64 * fps / units.max(1) as f64
}
