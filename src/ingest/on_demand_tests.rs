//! Tests of the on-demand decoder on a real (tiny, 64x64) libx264 clip pushed through a real
//! video feed: the first picture, going cold, the warm-ups (the session's and a snapshot's
//! through the feed's seam), pts carried to the pictures, and a camera's cold snapshot.

use bytes::Bytes;

use super::*;
use crate::hub::video::ColdDecode;
use crate::hub::{Hub, Still};
use crate::media::h26x::fixtures::*;
use crate::media::h26x::Codec;
use crate::media::nal::{write_units, NalFormat};
use crate::media::tier::Tier;

fn au(units: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    write_units(NalFormat::AnnexB, units.iter().copied(), &mut out).expect("fixture units");
    Bytes::from(out)
}

/// The clip's IDR pictures (parameter sets in band) and its P picture.
fn key(n: usize) -> Bytes {
    let vcl = [H264_TINY_VCL5_0, H264_TINY_VCL5_1][n];
    au(&[H264_TINY_SPS, H264_TINY_PPS, vcl])
}

fn delta() -> Bytes {
    au(&[H264_TINY_VCL1_0])
}

/// A unit at `pts_us` on the camera's clock, arrived at a time told by its pts.
fn stamp(pts_us: i64) -> Stamp {
    Stamp {
        pts_us,
        captured_unix_ms: 1_000_000 + pts_us as u64 / 1000,
    }
}

/// A session: the feed started from an RTSP-like stream (Annex B, no extradata) and its
/// decoder registered, as the worker does.
fn session(feed: &VideoFeed, demand: &Arc<Demand>) -> OnDemandDecoder {
    feed.start(Codec::H264, NalFormat::AnnexB, &[]);
    let dec = OnDemandDecoder::new("cam", demand.clone());
    feed.set_decoder(dec.seam());
    dec
}

/// Pushes a unit as the worker does and returns the pts of the pictures it decoded to.
fn push(feed: &VideoFeed, dec: &mut OnDemandDecoder, data: Bytes, pts_us: i64) -> Vec<i64> {
    feed.push_unit(data, stamp(pts_us));
    let mut out = Vec::new();
    dec.unit(feed, &mut out);
    for p in &out {
        assert_eq!((p.width, p.height), (64, 64));
        assert_eq!(
            p.stamp,
            stamp(p.stamp.pts_us),
            "the unit's arrival goes with it"
        );
    }
    out.iter().map(|p| p.stamp.pts_us).collect()
}

/// A session that made its first picture and went cold on the next unit (nobody wants
/// pictures): the feed's GOP is the keyframe at 0 and the P picture at 40 ms.
fn gone_cold(feed: &VideoFeed, demand: &Arc<Demand>) -> OnDemandDecoder {
    let mut dec = session(feed, demand);
    assert_eq!(
        push(feed, &mut dec, key(0), 0),
        [0],
        "the session's first picture"
    );
    assert_eq!(demand.frames_decoded(), 1);
    assert!(
        dec.shared.lock().opened.is_none(),
        "the decoder is freed with the first picture"
    );
    assert_eq!(push(feed, &mut dec, delta(), 40_000), Vec::<i64>::new());
    assert_eq!(demand.decoder(), DecodeMode::Off);
    assert!(demand.is_cold());
    assert_eq!(demand.frames_decoded(), 1, "nothing decoded while cold");
    dec
}

#[test]
fn a_camera_nobody_watches_stops_decoding_and_warms_up_from_the_feeds_gop() {
    let (feed, demand) = (VideoFeed::default(), Arc::new(Demand::default()));
    let mut dec = gone_cold(&feed, &demand);
    assert_eq!(push(&feed, &mut dec, delta(), 80_000), Vec::<i64>::new());
    // A lane wants every picture: the GOP (3 units) decodes at once, only the newest comes out.
    let lane = demand.hold();
    assert_eq!(push(&feed, &mut dec, delta(), 120_000), [120_000]);
    assert_eq!(demand.frames_decoded(), 1 + 4);
    assert_eq!(demand.decoder(), DecodeMode::Full);
    // From there on, one picture per unit, each with its own pts.
    assert_eq!(push(&feed, &mut dec, key(1), 160_000), [160_000]);
    assert_eq!(push(&feed, &mut dec, delta(), 200_000), [200_000]);
    drop(lane);
    assert_eq!(push(&feed, &mut dec, delta(), 240_000), Vec::<i64>::new());
    assert_eq!(demand.decoder(), DecodeMode::Off);
}

#[test]
fn a_decoder_freed_after_the_first_picture_warms_up_for_a_viewer_who_comes_at_once() {
    let (feed, demand) = (VideoFeed::default(), Arc::new(Demand::default()));
    let mut dec = session(&feed, &demand);
    assert_eq!(push(&feed, &mut dec, key(0), 0), [0]);
    assert!(dec.shared.lock().opened.is_none());
    let lane = demand.hold();
    // A new decoder takes the GOP again from its keyframe: the P picture comes out whole.
    assert_eq!(push(&feed, &mut dec, delta(), 40_000), [40_000]);
    assert_eq!(demand.frames_decoded(), 1 + 2);
    assert_eq!(push(&feed, &mut dec, delta(), 80_000), [80_000]);
    assert_eq!(demand.decoder(), DecodeMode::Full);
    drop(lane);
}

#[test]
fn a_snapshot_warms_the_sessions_decoder_which_goes_on_from_there() {
    let (feed, demand) = (VideoFeed::default(), Arc::new(Demand::default()));
    let mut dec = gone_cold(&feed, &demand);
    let ColdDecode { decoder: seam, gop } = feed.cold_decode().expect("registered");
    assert_eq!(gop.len(), 2);
    let held = demand.hold();
    let p = seam.newest_picture(&gop).expect("the GOP's newest picture");
    assert_eq!(
        p.stamp,
        stamp(40_000),
        "the newest unit's, not the keyframe's"
    );
    assert_eq!(demand.frames_decoded(), 1 + 2);
    assert_eq!(demand.decoder(), DecodeMode::Full, "decoding from here on");
    assert!(seam.newest_picture(&gop).is_none(), "decoded already");
    // The next unit continues the same decoder: one more picture, no second warm-up.
    assert_eq!(push(&feed, &mut dec, delta(), 80_000), [80_000]);
    assert_eq!(demand.frames_decoded(), 1 + 2 + 1);
    drop(held);
    // The session ends: its decoder answers no snapshot any more.
    drop(dec);
    assert!(seam.newest_picture(&feed.gop()).is_none());
    feed.stop();
    assert!(feed.cold_decode().is_none(), "gone with the session");
}

#[test]
fn a_snapshots_gop_overtaken_by_the_session_decodes_nothing() {
    let (feed, demand) = (VideoFeed::default(), Arc::new(Demand::default()));
    let mut dec = gone_cold(&feed, &demand);
    let ColdDecode {
        decoder: seam,
        gop: old,
    } = feed.cold_decode().expect("registered");
    // The session hands over a unit the snapshot's GOP lacks: decoding that GOP would leave
    // the decoder without it.
    assert!(push(&feed, &mut dec, delta(), 80_000).is_empty());
    assert!(seam.newest_picture(&old).is_none());
    assert_eq!(demand.decoder(), DecodeMode::Off);
    assert!(seam.newest_picture(&feed.gop()).is_some());
}

/// A hub with one RTSP camera whose decoder goes cold as soon as nobody wants pictures.
fn hub() -> Hub {
    let config = crate::config::parse(
        r#"{"cameras":[{"id":"cam","url":"rtsp://cam.example/stream","decode_linger_ms":0}]}"#,
    )
    .expect("test config");
    Hub::new(&config)
}

#[tokio::test]
async fn a_cold_snapshot_is_answered_by_the_sessions_decoder() {
    let hub = hub();
    let stream = hub.stream("cam").expect("the camera's stream");
    let cam = stream.camera.clone();
    let (feed, demand) = (cam.video(), cam.demand());
    let mut dec = session(feed, demand);
    let mut out = Vec::new();
    feed.push_unit(key(0), stamp(0));
    dec.unit(feed, &mut out);
    let p = out.pop().expect("the session's first picture");
    let first = cam.publish(p.width, p.height, p.picture, p.stamp);
    feed.push_unit(delta(), stamp(40_000));
    dec.unit(feed, &mut out);
    assert!(out.is_empty() && demand.is_cold(), "nobody watches");
    let tier = Tier {
        quality: 85,
        scale: 1,
    };
    let snap = stream
        .attach(Still { tier, after: None })
        .await
        .expect("a fresh picture");
    assert!(snap.seq > first, "not the old picture");
    assert_eq!(
        snap.stamp,
        stamp(40_000),
        "the GOP's newest, with its stamp"
    );
    assert_eq!(demand.frames_decoded(), 1 + 2);
    assert!(!demand.is_cold());
}

#[test]
fn a_late_turn_publishes_each_units_pictures_before_taking_the_next() {
    let (feed, demand) = (VideoFeed::default(), Arc::new(Demand::default()));
    let mut dec = session(&feed, &demand);
    // The decode pool's turn comes two units late.
    feed.push_unit(key(0), stamp(0));
    feed.push_unit(delta(), stamp(40_000));
    let (mut out, mut published) = (Vec::new(), Vec::new());
    dec.catch_up(&feed, &mut out, &mut |pictures| {
        for p in pictures.drain(..) {
            published.push(p.stamp.pts_us);
            demand.published();
        }
    });
    assert_eq!(published, [0], "the session's first picture");
    // Had the picture been published after the second unit turned the decoder off, the camera
    // would look current with a picture a unit old.
    assert!(demand.is_cold());
    assert_eq!(demand.decoder(), DecodeMode::Off);
}
