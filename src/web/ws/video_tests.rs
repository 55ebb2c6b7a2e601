//! Tests of one viewer's video gating: keyframe resumption, keyframes-only mode, `video_config`
//! before the first keyframe of a new generation, no unit twice, and the wire messages.

use std::sync::Arc;

use super::*;
use crate::media::h26x::fixtures::*;
use crate::media::h26x::{Codec, VideoParams};

fn config(generation: u64, sps: &[u8], pps: &[u8]) -> Arc<VideoConfig> {
    Arc::new(VideoConfig {
        params: Arc::new(VideoParams::from_parameter_sets(Codec::H264, [sps, pps]).unwrap()),
        generation,
    })
}

fn tiny(generation: u64) -> Arc<VideoConfig> {
    config(generation, H264_TINY_SPS, H264_TINY_PPS)
}

fn unit(seq: u64, key: bool, config: &Arc<VideoConfig>) -> VideoUnit {
    VideoUnit::new(
        seq,
        key,
        Bytes::from(vec![seq as u8; 8]),
        crate::media::clock::Stamp {
            pts_us: seq as i64 * 40_000,
            captured_unix_ms: 1_000 + seq,
        },
        config.clone(),
    )
}

/// Seqs of the units `admit` let through, from their wire headers.
fn sent(out: &[VideoOut]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            VideoOut::Unit(b) => Some(header(b)["seq"].as_u64().unwrap()),
            VideoOut::Config(_) => None,
        })
        .collect()
}

fn configs(out: &[VideoOut]) -> usize {
    out.iter()
        .filter(|o| matches!(o, VideoOut::Config(_)))
        .count()
}

fn header(msg: &[u8]) -> Value {
    let len = u16::from_be_bytes([msg[1], msg[2]]) as usize;
    serde_json::from_slice(&msg[3..3 + len]).unwrap()
}

/// Feeds `units` in order; what went out.
fn feed(v: &mut VideoSub, units: &[VideoUnit]) -> Vec<VideoOut> {
    units.iter().flat_map(|u| v.admit("a", u)).collect()
}

#[test]
fn waits_for_a_keyframe_at_start_and_after_a_lag() {
    let c = tiny(1);
    let mut v = VideoSub::new(VideoMode::Full);
    let out = feed(
        &mut v,
        &[unit(1, false, &c), unit(2, false, &c), unit(3, true, &c)],
    );
    assert_eq!(
        sent(&out),
        [3],
        "deltas before the first keyframe are useless"
    );
    assert_eq!(sent(&feed(&mut v, &[unit(4, false, &c)])), [4]);
    v.lagged();
    let out = feed(
        &mut v,
        &[unit(9, false, &c), unit(10, false, &c), unit(11, true, &c)],
    );
    assert_eq!(
        sent(&out),
        [11],
        "a viewer that missed references resumes at a keyframe"
    );
    assert_eq!(configs(&out), 0, "the parameters did not change");
    assert_eq!(sent(&feed(&mut v, &[unit(12, false, &c)])), [12]);
}

#[test]
fn keyframes_mode_passes_keyframes_only_and_full_resumes_at_a_keyframe() {
    let c = tiny(1);
    let mut v = VideoSub::new(VideoMode::Keyframes);
    let units: Vec<VideoUnit> = (1..=9).map(|s| unit(s, s % 3 == 1, &c)).collect();
    assert_eq!(sent(&feed(&mut v, &units)), [1, 4, 7]);
    v.set_mode(VideoMode::Full);
    let more: Vec<VideoUnit> = (10..=13).map(|s| unit(s, s % 3 == 1, &c)).collect();
    assert_eq!(
        sent(&feed(&mut v, &more)),
        [10, 11, 12, 13],
        "full from the next keyframe on"
    );
    v.set_mode(VideoMode::Keyframes);
    let more: Vec<VideoUnit> = (14..=16).map(|s| unit(s, s % 3 == 1, &c)).collect();
    assert_eq!(sent(&feed(&mut v, &more)), [16]);
}

#[test]
fn a_new_generation_is_configured_before_its_first_keyframe() {
    let c1 = tiny(1);
    let c2 = config(2, H264_HIGH_320X240_SPS, H264_HIGH_320X240_PPS);
    let mut v = VideoSub::new(VideoMode::Full);
    let out = feed(&mut v, &[unit(1, true, &c1), unit(2, false, &c1)]);
    assert!(matches!(&out[0], VideoOut::Config(_)), "config first");
    assert_eq!(configs(&out), 1);
    assert_eq!(sent(&out), [1, 2]);

    // A delta unit under a new generation cannot be decoded with either configuration.
    let out = feed(&mut v, &[unit(3, false, &c2), unit(4, false, &c2)]);
    assert!(out.is_empty(), "{out:?}");
    let out = feed(&mut v, &[unit(5, true, &c2), unit(6, false, &c2)]);
    assert_eq!(out.len(), 3);
    let VideoOut::Config(cfg) = &out[0] else {
        panic!("video_config before the keyframe: {out:?}");
    };
    assert_eq!(cfg["type"], "video_config");
    assert_eq!(cfg["camera"], "a");
    assert_eq!(cfg["codec"], "avc1.64000C");
    assert_eq!(cfg["family"], "h264");
    assert_eq!(
        (cfg["width"].as_u64(), cfg["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(cfg["format"], "avcc");
    let desc = base64::engine::general_purpose::STANDARD
        .decode(cfg["description"].as_str().unwrap())
        .unwrap();
    assert_eq!(desc, c2.params.description);
    assert_eq!(sent(&out), [5, 6]);
    // Same generation again: no second video_config.
    assert_eq!(configs(&feed(&mut v, &[unit(7, true, &c2)])), 0);
}

#[test]
fn a_keyframe_under_a_new_generation_in_keyframes_mode_is_configured_too() {
    let mut v = VideoSub::new(VideoMode::Keyframes);
    let out = feed(&mut v, &[unit(1, true, &tiny(1)), unit(2, true, &tiny(2))]);
    assert_eq!(configs(&out), 2);
    assert_eq!(sent(&out), [1, 2]);
}

#[test]
fn no_unit_goes_out_twice() {
    let c = tiny(1);
    let mut v = VideoSub::new(VideoMode::Full);
    // The GOP burst at subscribe, then the broadcast repeating its tail.
    let burst = [unit(5, true, &c), unit(6, false, &c), unit(7, false, &c)];
    let again = [unit(6, false, &c), unit(7, false, &c), unit(8, false, &c)];
    assert_eq!(sent(&feed(&mut v, &burst)), [5, 6, 7]);
    assert_eq!(sent(&feed(&mut v, &again)), [8]);
    // After a lag, an old keyframe is not sent again either.
    v.lagged();
    assert!(feed(&mut v, &[unit(5, true, &c)]).is_empty());
}

#[test]
fn the_unit_message_has_the_frame_framing_with_kind_video() {
    let c = tiny(3);
    let u = unit(42, true, &c);
    let msg = unit_message("cam", &u);
    assert_eq!(msg[0], crate::web::ws::protocol::FRAME_MESSAGE_VERSION);
    let h = header(&msg);
    assert_eq!(h["camera"], "cam");
    assert_eq!(h["seq"], 42);
    assert_eq!(h["ts"], 1042);
    assert_eq!(h["pts"], 42 * 40_000, "the camera's clock, in microseconds");
    assert_eq!(h["kind"], "video");
    assert_eq!(h["key"], true);
    assert_eq!(
        (h["width"].as_u64(), h["height"].as_u64()),
        (Some(64), Some(64))
    );
    let len = u16::from_be_bytes([msg[1], msg[2]]) as usize;
    assert_eq!(
        &msg[3 + len..],
        &u.data[..],
        "the access unit follows the header"
    );
}

#[test]
fn every_viewer_gets_the_same_message_built_once() {
    let cfg = tiny(1);
    let u = unit(1, true, &cfg);
    let (mut a, mut b) = (
        VideoSub::new(VideoMode::Full),
        VideoSub::new(VideoMode::Full),
    );
    let wire = |out: Vec<VideoOut>| {
        out.into_iter()
            .find_map(|o| match o {
                VideoOut::Unit(b) => Some(b),
                VideoOut::Config(_) => None,
            })
            .expect("the unit goes out")
    };
    let (x, y) = (wire(a.admit("cam", &u)), wire(b.admit("cam", &u)));
    assert_eq!(
        x.as_ptr(),
        y.as_ptr(),
        "one buffer shared, not one copy per viewer"
    );
}
