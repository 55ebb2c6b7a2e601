//! Tests of access-unit inspection, decoder parameters from parameter sets and extradata,
//! and parameter-set tracking, on libx264/libx265 units.

use super::*;
use crate::media::h26x::fixtures::*;
use crate::media::nal::NalError;

fn au(format: NalFormat, units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    write_units(format, units.iter().copied(), &mut out).unwrap();
    out
}

/// A PPS of H.264 with the given id (only its id is read here).
fn h264_pps(id: u32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(id).ue(0).bits(1, 1);
    w.nal(&[0x68])
}

#[test]
fn inspect_finds_keyframes_and_parameter_sets_in_both_formats() {
    for format in [NalFormat::AnnexB, NalFormat::LengthPrefixed] {
        let key = au(
            format,
            &[
                &[0x09, 0xf0],
                H264_TINY_SPS,
                H264_TINY_PPS,
                H264_TINY_VCL5_0,
            ],
        );
        let info = inspect(Codec::H264, format, &key).unwrap();
        assert!(info.key && info.has_picture);
        assert_eq!(info.parameter_sets, vec![H264_TINY_SPS, H264_TINY_PPS]);

        let delta = au(format, &[H264_TINY_VCL1_0]);
        let info = inspect(Codec::H264, format, &delta).unwrap();
        assert!(!info.key && info.has_picture && info.parameter_sets.is_empty());

        let hevc_key = au(
            format,
            &[
                H265_TINY_VPS,
                H265_TINY_SPS,
                H265_TINY_PPS,
                H265_TINY_VCL21_0,
            ],
        );
        let info = inspect(Codec::H265, format, &hevc_key).unwrap();
        assert!(info.key);
        assert_eq!(info.parameter_sets.len(), 3);
        let hevc_delta = au(format, &[H265_TINY_VCL1_0]);
        assert!(!inspect(Codec::H265, format, &hevc_delta).unwrap().key);
    }
}

#[test]
fn a_recovery_point_sei_does_not_make_a_keyframe() {
    // SEI payload type 6 (recovery point) before a P slice: decoders may start there with
    // artifacts; a new viewer must start at an IDR.
    let sei: &[u8] = &[0x06, 0x06, 0x01, 0xc4, 0x80];
    let unit = au(NalFormat::AnnexB, &[sei, H264_TINY_VCL1_0]);
    let info = inspect(Codec::H264, NalFormat::AnnexB, &unit).unwrap();
    assert!(!info.key && info.has_picture);
    // Only the SEI: no picture at all.
    let only_sei = au(NalFormat::AnnexB, &[sei]);
    let info = inspect(Codec::H264, NalFormat::AnnexB, &only_sei).unwrap();
    assert!(!info.key && !info.has_picture);
}

#[test]
fn inspect_reports_unreadable_units() {
    assert!(matches!(
        inspect(Codec::H264, NalFormat::LengthPrefixed, &[0, 0, 0, 9, 0x65]),
        Err(VideoError::Nal(NalError::LengthOverrun { .. }))
    ));
    assert_eq!(
        inspect(Codec::H264, NalFormat::AnnexB, &[0, 0, 1, 0xe5, 0x88]),
        Err(VideoError::BadNalHeader)
    );
}

#[test]
fn params_from_sets_and_from_every_kind_of_extradata_agree() {
    let from_sets = VideoParams::from_parameter_sets(
        Codec::H264,
        [H264_HIGH_320X240_SPS, H264_HIGH_320X240_PPS],
    )
    .unwrap();
    assert_eq!(from_sets.codec_string, "avc1.64000C");
    assert_eq!((from_sets.width, from_sets.height), (320, 240));
    assert_eq!(&from_sets.description[..], H264_HIGH_320X240_AVCC);

    let annexb = au(
        NalFormat::AnnexB,
        &[H264_HIGH_320X240_SPS, H264_HIGH_320X240_PPS],
    );
    assert_eq!(
        VideoParams::from_extradata(Codec::H264, &annexb).unwrap(),
        from_sets
    );
    let (format, _) = extradata_parameter_sets(Codec::H264, &annexb).unwrap();
    assert_eq!(format, NalFormat::AnnexB);
    // Three-byte start codes as some RTSP stacks write them.
    let mut short = vec![0, 0, 1];
    short.extend_from_slice(H264_HIGH_320X240_SPS);
    short.extend_from_slice(&[0, 0, 1]);
    short.extend_from_slice(H264_HIGH_320X240_PPS);
    assert_eq!(
        VideoParams::from_extradata(Codec::H264, &short).unwrap(),
        from_sets
    );
    assert_eq!(
        VideoParams::from_extradata(Codec::H264, H264_HIGH_320X240_AVCC).unwrap(),
        from_sets
    );
    let (format, _) = extradata_parameter_sets(Codec::H264, H264_HIGH_320X240_AVCC).unwrap();
    assert_eq!(format, NalFormat::LengthPrefixed);

    let hevc = VideoParams::from_extradata(Codec::H265, H265_MAIN_320X240_HVCC).unwrap();
    assert_eq!(hevc.codec_string, "hvc1.1.6.L60.90");
    assert_eq!(&hevc.description[..], H265_MAIN_320X240_HVCC);
    assert_eq!(
        hevc.parameter_sets,
        vec![
            H265_MAIN_320X240_VPS,
            H265_MAIN_320X240_SPS,
            H265_MAIN_320X240_PPS
        ]
    );
    let hevc_annexb = au(
        NalFormat::AnnexB,
        &[
            H265_MAIN_320X240_VPS,
            H265_MAIN_320X240_SPS,
            H265_MAIN_320X240_PPS,
        ],
    );
    assert_eq!(
        VideoParams::from_extradata(Codec::H265, &hevc_annexb).unwrap(),
        hevc
    );
}

#[test]
fn extradata_that_cannot_serve_is_refused() {
    let mut two_byte_lengths = H264_HIGH_320X240_AVCC.to_vec();
    two_byte_lengths[4] = 0xfd;
    assert_eq!(
        VideoParams::from_extradata(Codec::H264, &two_byte_lengths),
        Err(VideoError::UnsupportedLengthSize(2))
    );
    assert!(matches!(
        VideoParams::from_extradata(Codec::H264, &[2, 0x64, 0, 0x0c]),
        Err(VideoError::BadRecord(_))
    ));
    let sps_only = au(NalFormat::AnnexB, &[H264_HIGH_320X240_SPS]);
    assert_eq!(
        VideoParams::from_extradata(Codec::H264, &sps_only),
        Err(VideoError::Missing("PPS"))
    );
    let no_vps = au(NalFormat::AnnexB, &[H265_TINY_SPS, H265_TINY_PPS]);
    assert_eq!(
        VideoParams::from_extradata(Codec::H265, &no_vps),
        Err(VideoError::Missing("VPS"))
    );
}

#[test]
fn parameter_sets_replace_by_kind_and_id_and_stay_bounded() {
    let mut sets = ParameterSets::new(Codec::H264);
    assert!(!sets.is_complete());
    assert!(sets.update([H264_TINY_SPS, H264_TINY_PPS]).unwrap());
    assert!(sets.is_complete());
    assert!(
        !sets.update([H264_TINY_SPS, H264_TINY_PPS]).unwrap(),
        "same again"
    );
    // A PPS with another id joins; one with the same id replaces.
    let pps1 = h264_pps(1);
    assert!(sets.update([&pps1[..]]).unwrap());
    assert_eq!(sets.params().unwrap().parameter_sets.len(), 3);
    assert!(sets.update([H264_HIGH_320X240_PPS]).unwrap()); // id 0, other content
    let params = sets.params().unwrap();
    assert_eq!(
        params.parameter_sets,
        vec![H264_TINY_SPS, H264_HIGH_320X240_PPS, &pps1[..]]
    );
    // A new SPS replaces the old one: the size follows it.
    assert!(sets.update([H264_MAIN_1920X1080_SPS]).unwrap());
    assert_eq!(sets.params().unwrap().width, 1920);

    let before = sets.clone();
    let many: Vec<Vec<u8>> = (2..=40).map(h264_pps).collect();
    assert_eq!(
        sets.update(many.iter().map(|p| &p[..])),
        Err(VideoError::TooManyParameterSets)
    );
    assert_eq!(sets, before, "a refused update changes nothing");
    // Slices and SEI among the units are ignored.
    assert!(!sets.update([H264_TINY_VCL5_0, &[0x06, 0x05][..]]).unwrap());
}

#[test]
fn parameter_sets_frame_for_annexb_keyframes() {
    let params = VideoParams::from_parameter_sets(
        Codec::H265,
        [H265_TINY_PPS, H265_TINY_SPS, H265_TINY_VPS],
    )
    .unwrap();
    assert_eq!(params.codec_string, "hvc1.1.6.L30.90");
    let framed = params.parameter_sets_framed(NalFormat::AnnexB).unwrap();
    assert_eq!(
        framed,
        au(
            NalFormat::AnnexB,
            &[H265_TINY_VPS, H265_TINY_SPS, H265_TINY_PPS]
        )
    );
    let framed = params
        .parameter_sets_framed(NalFormat::LengthPrefixed)
        .unwrap();
    assert_eq!(&framed[..4], &(H265_TINY_VPS.len() as u32).to_be_bytes());
}

#[test]
fn every_fixture_stream_gives_parameters_whose_record_reads_back() {
    let h264 = [
        (H264_HIGH_320X240_SPS, H264_HIGH_320X240_PPS, 320, 240),
        (H264_MAIN_1920X1080_SPS, H264_MAIN_1920X1080_PPS, 1920, 1080),
        (
            H264_BASELINE_1280X720_SPS,
            H264_BASELINE_1280X720_PPS,
            1280,
            720,
        ),
        (
            H264_INTERLACED_352X288_SPS,
            H264_INTERLACED_352X288_PPS,
            352,
            288,
        ),
        (H264_HIGH444_330X250_SPS, H264_HIGH444_330X250_PPS, 330, 250),
        (H264_TINY_SPS, H264_TINY_PPS, 64, 64),
    ];
    for (sps, pps, width, height) in h264 {
        let params = VideoParams::from_parameter_sets(Codec::H264, [sps, pps]).unwrap();
        assert_eq!((params.width, params.height), (width, height));
        let (length_size, sets) = h264::parse_avcc(&params.description).unwrap();
        assert_eq!((length_size, sets), (4, vec![sps, pps]));
    }
    let h265 = [
        (
            H265_MAIN_320X240_VPS,
            H265_MAIN_320X240_SPS,
            H265_MAIN_320X240_PPS,
            320,
            240,
        ),
        (
            H265_MAIN_330X250_VPS,
            H265_MAIN_330X250_SPS,
            H265_MAIN_330X250_PPS,
            330,
            250,
        ),
        (
            H265_MAIN_1920X1080_VPS,
            H265_MAIN_1920X1080_SPS,
            H265_MAIN_1920X1080_PPS,
            1920,
            1080,
        ),
        (H265_TINY_VPS, H265_TINY_SPS, H265_TINY_PPS, 64, 64),
    ];
    for (vps, sps, pps, width, height) in h265 {
        let params = VideoParams::from_parameter_sets(Codec::H265, [vps, sps, pps]).unwrap();
        assert_eq!((params.width, params.height), (width, height));
        let (length_size, sets) = h265::parse_hvcc(&params.description).unwrap();
        assert_eq!((length_size, sets), (4, vec![vps, sps, pps]));
    }
}
