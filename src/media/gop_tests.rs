//! Tests of the GOP cache: what a new viewer gets, the byte bound, parameter changes, on
//! access units cut from libx264/libx265 streams.

use super::*;
use crate::media::h26x::fixtures::*;
use crate::media::nal::{write_units, NalError};

fn au(format: NalFormat, units: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    write_units(format, units.iter().copied(), &mut out).unwrap();
    Bytes::from(out)
}

fn key264() -> Bytes {
    au(
        NalFormat::AnnexB,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0],
    )
}

fn delta264() -> Bytes {
    au(NalFormat::AnnexB, &[H264_TINY_VCL1_0])
}

fn cache() -> GopCache {
    GopCache::new(Codec::H264, NalFormat::AnnexB, DEFAULT_MAX_BYTES)
}

fn seqs(cache: &GopCache) -> Vec<u64> {
    cache.snapshot().units.iter().map(|u| u.seq).collect()
}

#[test]
fn snapshot_holds_the_keyframe_and_everything_after_it() {
    let mut c = cache();
    let pushed = c.push(delta264(), 1, 100).unwrap();
    assert!(
        !pushed.kept && !pushed.key,
        "nothing is kept before the first keyframe"
    );
    assert!(c.snapshot().units.is_empty());

    let pushed = c.push(key264(), 2, 200).unwrap();
    assert!(pushed.key && pushed.kept && pushed.params_changed);
    c.push(delta264(), 3, 300).unwrap();
    c.push(delta264(), 4, 400).unwrap();
    let snap = c.snapshot();
    assert_eq!(seqs(&c), vec![2, 3, 4]);
    assert_eq!(snap.units[0].data, key264());
    assert!(snap.units[0].key && !snap.units[1].key);
    assert_eq!(snap.units[2].pts, 400);
    let params = snap.params.unwrap();
    assert_eq!(params.codec_string, "avc1.64000A");
    assert_eq!((params.width, params.height), (64, 64));
    assert_eq!(
        c.bytes(),
        key264().len() + 2 * delta264().len() + 3 * UNIT_OVERHEAD
    );

    // The next keyframe starts a new GOP; the old one is gone.
    // The clip's second IDR, with the same SPS and PPS in band again.
    let second_idr = au(
        NalFormat::AnnexB,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_1],
    );
    let pushed = c.push(second_idr.clone(), 5, 500).unwrap();
    assert!(
        pushed.key && !pushed.params_changed,
        "same parameters again"
    );
    c.push(delta264(), 6, 600).unwrap();
    assert_eq!(seqs(&c), vec![5, 6]);
    assert_eq!(c.snapshot().units[0].data, second_idr);
    assert_eq!(c.gops_too_long(), 0);
}

#[test]
fn a_gop_past_the_bound_is_dropped_counted_and_skipped_to_the_next_keyframe() {
    let key_cost = key264().len() + UNIT_OVERHEAD;
    let delta_cost = delta264().len() + UNIT_OVERHEAD;
    // Room for the keyframe and exactly two more units.
    let mut c = GopCache::new(Codec::H264, NalFormat::AnnexB, key_cost + 2 * delta_cost);
    c.push(key264(), 1, 0).unwrap();
    assert!(c.push(delta264(), 2, 0).unwrap().kept);
    assert!(c.push(delta264(), 3, 0).unwrap().kept);
    assert_eq!(c.bytes(), key_cost + 2 * delta_cost);
    let pushed = c.push(delta264(), 4, 0).unwrap();
    assert!(!pushed.kept);
    assert_eq!(c.gops_too_long(), 1);
    assert!(c.is_empty() && c.bytes() == 0);
    // Nothing until the next keyframe, and the counter does not grow per unit.
    assert!(!c.push(delta264(), 5, 0).unwrap().kept);
    assert!(c.snapshot().units.is_empty());
    assert_eq!(c.gops_too_long(), 1);
    assert!(c.push(key264(), 6, 0).unwrap().kept);
    c.push(delta264(), 7, 0).unwrap();
    assert_eq!(seqs(&c), vec![6, 7]);
    assert!(c.params().is_some(), "parameters outlive a dropped GOP");
}

#[test]
fn a_keyframe_larger_than_the_bound_is_not_kept() {
    let mut c = GopCache::new(Codec::H264, NalFormat::AnnexB, 100);
    let pushed = c.push(key264(), 1, 0).unwrap();
    assert!(pushed.key && !pushed.kept && pushed.params_changed);
    assert_eq!(c.gops_too_long(), 1);
    assert!(!c.push(delta264(), 2, 0).unwrap().kept);
    assert!(c.is_empty());
}

#[test]
fn empty_units_count_toward_the_bound() {
    let key_cost = key264().len() + UNIT_OVERHEAD;
    let mut c = GopCache::new(
        Codec::H264,
        NalFormat::AnnexB,
        key_cost + 10 * UNIT_OVERHEAD,
    );
    c.push(key264(), 0, 0).unwrap();
    for seq in 1..=10 {
        assert!(c.push(Bytes::new(), seq, 0).unwrap().kept);
    }
    assert!(!c.push(Bytes::new(), 11, 0).unwrap().kept);
    assert_eq!(c.gops_too_long(), 1);
}

#[test]
fn changed_parameters_are_reported_with_the_new_size() {
    let mut c = cache();
    assert!(c.push(key264(), 1, 0).unwrap().params_changed);
    c.push(delta264(), 2, 0).unwrap();
    // The camera switches to 320x240 at a keyframe (new SPS and PPS in band).
    let switched = au(
        NalFormat::AnnexB,
        &[
            H264_HIGH_320X240_SPS,
            H264_HIGH_320X240_PPS,
            H264_TINY_VCL5_0,
        ],
    );
    let pushed = c.push(switched.clone(), 3, 0).unwrap();
    assert!(pushed.params_changed && pushed.kept);
    let params = c.params().unwrap();
    assert_eq!((params.width, params.height), (320, 240));
    assert_eq!(params.codec_string, "avc1.64000C");
    assert_eq!(&params.description[..], H264_HIGH_320X240_AVCC);
    assert_eq!(seqs(&c), vec![3]);
    assert!(!c.push(switched, 4, 0).unwrap().params_changed);

    // New parameters on a unit that is not a keyframe: the pictures held refer to the old
    // ones, so the GOP goes and the cache waits for a keyframe.
    let odd = au(
        NalFormat::AnnexB,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL1_0],
    );
    let pushed = c.push(odd, 5, 0).unwrap();
    assert!(pushed.params_changed && !pushed.kept);
    assert!(c.is_empty());
    assert_eq!(c.params().unwrap().width, 64);
}

#[test]
fn an_unreadable_unit_drops_the_gop_and_keeps_the_parameters() {
    let mut c = GopCache::new(Codec::H264, NalFormat::LengthPrefixed, DEFAULT_MAX_BYTES);
    let key = au(
        NalFormat::LengthPrefixed,
        &[H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0],
    );
    c.push(key.clone(), 1, 0).unwrap();
    let before = c.params().cloned();
    let broken = Bytes::from_static(&[0, 0, 0, 50, 0x41, 0x9a]);
    assert!(matches!(
        c.push(broken, 2, 0),
        Err(VideoError::Nal(NalError::LengthOverrun { .. }))
    ));
    assert!(c.is_empty());
    assert_eq!(c.params().cloned(), before);
    // A broken SPS in a keyframe: refused, parameters unchanged.
    let bad_sps = au(
        NalFormat::LengthPrefixed,
        &[&[0x67, 0x64], H264_TINY_VCL5_0],
    );
    assert!(c.push(bad_sps, 3, 0).is_err());
    assert_eq!(c.params().cloned(), before);
    assert!(c.push(key, 4, 0).unwrap().kept);
}

#[test]
fn extradata_gives_parameters_to_streams_without_them_in_band() {
    let mut c = GopCache::new(Codec::H264, NalFormat::LengthPrefixed, DEFAULT_MAX_BYTES);
    assert!(c.set_extradata(H264_HIGH_320X240_AVCC).unwrap());
    assert!(!c.set_extradata(H264_HIGH_320X240_AVCC).unwrap());
    let bare_key = au(NalFormat::LengthPrefixed, &[H264_TINY_VCL5_0]);
    let pushed = c.push(bare_key, 1, 0).unwrap();
    assert!(pushed.key && pushed.kept && !pushed.params_changed);
    assert_eq!(c.snapshot().params.unwrap().codec_string, "avc1.64000C");
    c.reset();
    assert!(c.params().is_none() && c.is_empty());
}

#[test]
fn hevc_gops_start_at_irap_pictures() {
    let mut c = GopCache::new(Codec::H265, NalFormat::AnnexB, DEFAULT_MAX_BYTES);
    let idr = au(
        NalFormat::AnnexB,
        &[
            H265_TINY_VPS,
            H265_TINY_SPS,
            H265_TINY_PPS,
            H265_TINY_VCL20_0,
        ],
    );
    let trail = au(NalFormat::AnnexB, &[H265_TINY_VCL1_0]);
    assert!(!c.push(trail.clone(), 1, 0).unwrap().kept);
    let pushed = c.push(idr, 2, 0).unwrap();
    assert!(pushed.key && pushed.params_changed);
    c.push(trail, 3, 0).unwrap();
    let idr_n_lp = au(NalFormat::AnnexB, &[H265_TINY_VCL21_0]);
    assert!(c.push(idr_n_lp, 4, 0).unwrap().key);
    assert_eq!(seqs(&c), vec![4]);
    assert_eq!(c.params().unwrap().codec_string, "hvc1.1.6.L30.90");
}
