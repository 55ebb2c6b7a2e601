//! Tests of one camera's video feed on access units cut from libx264/libx265 streams: the
//! framing viewers get, the GOP a joining viewer starts from, the receiver that continues it,
//! configuration generations, stop, and the counters.

use super::*;
use crate::media::h26x::fixtures::*;
use crate::media::nal::write_units;

fn au(format: NalFormat, units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    write_units(format, units.iter().copied(), &mut out).unwrap();
    out
}

/// The tiny clip's first IDR with its parameter sets in band, Annex B.
fn key() -> Vec<u8> {
    au(
        NalFormat::AnnexB,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0],
    )
}

fn delta() -> Vec<u8> {
    au(NalFormat::AnnexB, &[H264_TINY_VCL1_0])
}

fn extradata() -> Vec<u8> {
    au(NalFormat::AnnexB, &[H264_TINY_SPS, H264_TINY_PPS])
}

fn seqs(units: &[Arc<VideoUnit>]) -> Vec<u64> {
    units.iter().map(|u| u.seq).collect()
}

/// Everything the receiver holds now.
fn drain(rx: &mut broadcast::Receiver<Arc<VideoUnit>>) -> Vec<Arc<VideoUnit>> {
    let mut out = Vec::new();
    while let Ok(u) = rx.try_recv() {
        out.push(u);
    }
    out
}

#[test]
fn annex_b_units_come_out_length_prefixed_and_a_keyframe_starts_the_gop() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &extradata());
    let mut rx = feed.subscribe().rx;
    feed.push(&key());
    feed.push(&delta());
    // A 3-byte start code and a trailing zero are Annex B too.
    let mut short = vec![0, 0, 1];
    short.extend_from_slice(H264_TINY_VCL1_0);
    short.push(0);
    feed.push(&short);

    let got = drain(&mut rx);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].data,
        au(
            NalFormat::LengthPrefixed,
            &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0]
        )
    );
    let delta_lp = au(NalFormat::LengthPrefixed, &[H264_TINY_VCL1_0]);
    assert_eq!(got[1].data, delta_lp);
    assert_eq!(got[2].data, delta_lp);
    assert_eq!(
        got.iter().map(|u| u.key).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(seqs(&got), [got[0].seq, got[0].seq + 1, got[0].seq + 2]);
    let params = &got[0].config.params;
    assert_eq!(params.codec_string, "avc1.64000A");
    assert_eq!((params.width, params.height), (64, 64));

    let start = feed.subscribe();
    assert_eq!(seqs(&start.gop), seqs(&got), "the GOP from its keyframe on");
    assert!(start.gop[0].key);
    assert_eq!(start.config.map(|c| c.generation), Some(1));

    // The next keyframe starts a new GOP.
    feed.push(&au(
        NalFormat::AnnexB,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_1],
    ));
    feed.push(&delta());
    let gop = feed.subscribe().gop;
    assert_eq!(gop.len(), 2);
    assert!(gop[0].key && !gop[1].key);
    assert_eq!(gop[0].seq, got[2].seq + 1);
    assert_eq!(feed.stats().gop_units, 2);
}

#[test]
fn length_prefixed_sources_pass_through_unchanged() {
    let feed = VideoFeed::default();
    feed.start(
        Codec::H264,
        NalFormat::LengthPrefixed,
        H264_HIGH_320X240_AVCC,
    );
    let mut rx = feed.subscribe().rx;
    let k = au(NalFormat::LengthPrefixed, &[H264_TINY_VCL5_0]);
    feed.push(&k);
    let got = drain(&mut rx);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, k);
    assert!(got[0].key);
    assert_eq!(got[0].config.params.width, 320, "parameters from the avcC");
}

#[test]
fn a_new_subscriber_gets_the_gop_then_exactly_what_follows() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &[]);
    feed.push(&key());
    feed.push(&delta());
    feed.push(&delta());
    let mut start = feed.subscribe();
    assert_eq!(start.gop.len(), 3);
    assert!(start.gop[0].key);
    let last = start.gop[2].seq;
    feed.push(&delta());
    feed.push(&key());
    let next = drain(&mut start.rx);
    assert_eq!(seqs(&next), [last + 1, last + 2], "no gap, no repeat");
}

#[test]
fn the_receiver_continues_right_after_the_gop_under_concurrent_pushes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let feed = Arc::new(VideoFeed::default());
    feed.start(Codec::H264, NalFormat::AnnexB, &[]);
    feed.push(&key());
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (feed, stop) = (feed.clone(), stop.clone());
        std::thread::spawn(move || {
            let (k, d) = (key(), delta());
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 10_000_000 {
                feed.push(if n % 10 == 9 { &k } else { &d });
                n += 1;
            }
        })
    };
    let mut checked = 0;
    for _ in 0..2000 {
        let mut start = feed.subscribe();
        assert!(start.gop[0].key, "the GOP starts at a keyframe");
        let gop = seqs(&start.gop);
        let contiguous: Vec<u64> = (gop[0]..gop[0] + gop.len() as u64).collect();
        assert_eq!(gop, contiguous, "the GOP has no hole");
        // The pusher runs until told to stop, so the next unit comes.
        match start.rx.blocking_recv() {
            Ok(next) => {
                assert_eq!(next.seq, gop[gop.len() - 1] + 1, "GOP {gop:?}");
                checked += 1;
            }
            // Behind by a whole broadcast before the first read: nothing to judge.
            Err(_) => continue,
        }
    }
    stop.store(true, Ordering::Relaxed);
    pusher.join().unwrap();
    assert!(checked > 1000, "only {checked} subscriptions judged");
}

#[test]
fn a_parameter_change_at_a_keyframe_bumps_the_generation() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &extradata());
    let mut rx = feed.subscribe().rx;
    feed.push(&key());
    feed.push(&delta());
    // Same parameters in band again: same generation.
    feed.push(&key());
    // The camera comes back at 320x240.
    feed.push(&au(
        NalFormat::AnnexB,
        &[
            H264_HIGH_320X240_SPS,
            H264_HIGH_320X240_PPS,
            H264_TINY_VCL5_0,
        ],
    ));
    feed.push(&delta());
    let got = drain(&mut rx);
    let gens: Vec<u64> = got.iter().map(|u| u.config.generation).collect();
    assert_eq!(gens, [1, 1, 1, 2, 2]);
    assert_eq!(got[3].config.params.width, 320);
    assert_eq!(got[0].config.params.width, 64);
    assert_eq!(feed.subscribe().config.map(|c| c.generation), Some(2));
}

#[test]
fn stop_clears_the_gop_and_the_parameters() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &[]);
    feed.push(&key());
    feed.push(&delta());
    assert_eq!(feed.codec(), Some(Codec::H264));
    feed.stop();
    let start = feed.subscribe();
    assert!(start.gop.is_empty());
    assert!(start.config.is_none());
    assert_eq!(feed.codec(), None);
    let stats = feed.stats();
    assert_eq!((stats.gop_units, stats.gop_bytes), (0, 0));
    // Nothing is taken while no session runs.
    feed.push(&key());
    assert!(feed.subscribe().gop.is_empty());
}

#[test]
fn units_before_any_parameters_are_not_sent() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &[]);
    let mut rx = feed.subscribe().rx;
    feed.push(&delta());
    // A keyframe without its parameter sets cannot be decoded either.
    feed.push(&au(NalFormat::AnnexB, &[H264_TINY_VCL5_0]));
    assert!(drain(&mut rx).is_empty());
    assert!(feed.subscribe().gop.is_empty());
    assert!(feed.subscribe().config.is_none());
    feed.push(&key());
    let got = drain(&mut rx);
    assert_eq!(got.len(), 1);
    assert!(got[0].key);
    assert_eq!(feed.stats().units_in, 3);
}

#[test]
fn bad_units_are_counted_and_dropped() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &extradata());
    let mut rx = feed.subscribe().rx;
    feed.push(&key());
    // No start code at all; a NAL header with the forbidden bit set.
    feed.push(&[0x12, 0x34, 0x56]);
    feed.push(&[0, 0, 0, 1, 0x80, 0x01]);
    feed.push(&delta());
    let stats = feed.stats();
    assert_eq!(stats.units_in, 4);
    assert_eq!(stats.units_bad, 2);
    assert_eq!(stats.codec, Some("h264"));
    assert_eq!(stats.codec_string.as_deref(), Some("avc1.64000A"));
    let got = drain(&mut rx);
    assert_eq!(
        got.iter().map(|u| u.key).collect::<Vec<_>>(),
        [true, false],
        "only readable units go out"
    );
    // A length-prefixed source whose lengths overrun: counted too.
    let lp = VideoFeed::default();
    lp.start(
        Codec::H264,
        NalFormat::LengthPrefixed,
        H264_HIGH_320X240_AVCC,
    );
    lp.push(&[0, 0, 0, 9, 0x65]);
    assert_eq!(lp.stats().units_bad, 1);
}

#[test]
fn h265_annex_b_units_come_out_length_prefixed() {
    let feed = VideoFeed::default();
    feed.start(Codec::H265, NalFormat::AnnexB, &[]);
    let mut rx = feed.subscribe().rx;
    feed.push(&au(
        NalFormat::AnnexB,
        &[
            H265_TINY_VPS,
            H265_TINY_SPS,
            H265_TINY_PPS,
            H265_TINY_VCL20_0,
        ],
    ));
    feed.push(&au(NalFormat::AnnexB, &[H265_TINY_VCL1_0]));
    let got = drain(&mut rx);
    assert_eq!(got.len(), 2);
    assert!(got[0].key && !got[1].key);
    assert_eq!(
        got[1].data,
        au(NalFormat::LengthPrefixed, &[H265_TINY_VCL1_0])
    );
    assert!(got[0].config.params.codec_string.starts_with("hvc1."));
    assert_eq!(feed.codec(), Some(Codec::H265));
}

#[test]
fn a_reconnect_with_the_same_parameters_keeps_the_generation() {
    let feed = VideoFeed::default();
    feed.start(Codec::H264, NalFormat::AnnexB, &extradata());
    feed.push(&key());
    let first = feed.subscribe().config.expect("config").generation;
    // The camera reconnects (a new session) and sends the same parameters: viewers keep their
    // decoder configuration.
    feed.stop();
    feed.start(Codec::H264, NalFormat::AnnexB, &extradata());
    feed.push(&key());
    let again = feed.subscribe().config.expect("config").generation;
    assert_eq!(first, again);
    // In band only, same parameters: still the same generation.
    feed.stop();
    feed.start(Codec::H264, NalFormat::AnnexB, &[]);
    feed.push(&key());
    assert_eq!(feed.subscribe().config.expect("config").generation, first);
}

#[test]
fn a_relayed_unit_keeps_its_stamp_and_counts_its_viewers() {
    let feed = VideoFeed::default();
    // What a relay does: length-prefixed units, parameters from the owner's avcC.
    feed.start(Codec::H264, NalFormat::LengthPrefixed, &[]);
    assert_eq!(feed.viewers(), 0);
    let start = feed.subscribe();
    assert_eq!(feed.viewers(), 1);
    let lp = au(
        NalFormat::LengthPrefixed,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0],
    );
    let stamp = crate::media::clock::Stamp {
        pts_us: 7_040_000,
        captured_unix_ms: 1_234,
    };
    feed.push_unit(Bytes::from(lp), stamp);
    let got = drain(&mut { start.rx });
    assert_eq!(got.len(), 1);
    assert!(got[0].key);
    assert_eq!(got[0].stamp, stamp);
    assert_eq!(feed.viewers(), 0);
}
