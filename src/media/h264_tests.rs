//! Tests of the H.264 SPS parser, codec strings and avcC records, on SPSs that libx264 wrote
//! (see the fixtures) and on SPSs written bit by bit for the syntax libx264 does not use.

use super::*;
use crate::media::h26x::fixtures::*;

/// The part of a High-profile SPS after the chroma/scaling fields: 640x544 coded, cropped
/// to 640x480, POC type 0.
fn sps_tail(w: &mut BitWriter) {
    w.ue(0).ue(0).ue(2); // log2_max_frame_num_minus4, poc type 0, log2_max_poc_lsb_minus4
    w.ue(1).bits(1, 0); // max_num_ref_frames, gaps
    w.ue(39).ue(33); // 40 x 34 macroblocks
    w.bits(1, 1).bits(1, 1); // frame_mbs_only, direct_8x8_inference
    w.bits(1, 1).ue(0).ue(0).ue(0).ue(32); // crop bottom 32 * 2 rows
    w.bits(1, 0); // no VUI
}

#[test]
fn libx264_spss_give_codec_string_and_size() {
    // (SPS, codec string, width, height); profiles and levels as ffprobe reported them.
    let cases = [
        (H264_HIGH_320X240_SPS, "avc1.64000C", 320, 240), // High, level 1.2
        (H264_MAIN_1920X1080_SPS, "avc1.4D4028", 1920, 1080), // Main, 4.0, 1088 cropped
        (H264_BASELINE_1280X720_SPS, "avc1.42C01F", 1280, 720), // Constrained Baseline, 3.1
        (H264_INTERLACED_352X288_SPS, "avc1.640015", 352, 288), // High, 2.1, field coded
        (H264_HIGH444_330X250_SPS, "avc1.F4000C", 330, 250), // High 4:4:4, 1.2, cropped
        (H264_TINY_SPS, "avc1.64000A", 64, 64),
    ];
    for (nal, codec, width, height) in cases {
        let sps = Sps::parse(nal).unwrap();
        assert_eq!(sps.codec_string(), codec);
        assert_eq!((sps.width, sps.height), (width, height), "{codec}");
    }
    let interlaced = Sps::parse(H264_INTERLACED_352X288_SPS).unwrap();
    assert!(!interlaced.frame_mbs_only);
    let h444 = Sps::parse(H264_HIGH444_330X250_SPS).unwrap();
    assert_eq!(h444.chroma_format_idc, 3);
    let main = Sps::parse(H264_MAIN_1920X1080_SPS).unwrap();
    assert_eq!(
        (main.profile_idc, main.constraint_flags, main.level_idc),
        (77, 0x40, 40)
    );
}

#[test]
fn scaling_matrices_are_skipped_to_reach_the_size() {
    let mut w = BitWriter::default();
    w.bits(8, 100).bits(8, 0).bits(8, 30).ue(0); // High, level 3.0, sps id 0
    w.ue(1).ue(0).ue(0).bits(1, 0); // 4:2:0, 8 bits, no bypass
    w.bits(1, 1); // seq_scaling_matrix_present_flag
    w.bits(1, 1); // list 0 (4x4): 16 deltas of +1
    for _ in 0..16 {
        w.se(1);
    }
    w.bits(1, 1).se(-8); // list 1: next scale 0 at once ("use the default"), one delta only
    w.bits(1, 0).bits(1, 0).bits(1, 0).bits(1, 0); // lists 2..=5 absent
    w.bits(1, 1); // list 6 (8x8): 64 deltas of varied size
    for i in 0..64 {
        w.se(if i % 2 == 0 { 5 } else { -3 });
    }
    w.bits(1, 0); // list 7 absent
    sps_tail(&mut w);
    let nal = w.nal(&[0x67]);
    let sps = Sps::parse(&nal).unwrap();
    assert_eq!(sps.codec_string(), "avc1.64001E");
    assert_eq!((sps.width, sps.height), (640, 480));
}

#[test]
fn poc_type_one_and_monochrome_are_read() {
    let mut w = BitWriter::default();
    w.bits(8, 100).bits(8, 0).bits(8, 31).ue(3); // sps id 3
    w.ue(0).ue(2).ue(2).bits(1, 0).bits(1, 0); // monochrome, 10 bits, no matrices
    w.ue(0).ue(1); // log2_max_frame_num_minus4, poc type 1
    w.bits(1, 0).se(-2).se(4).ue(3).se(1).se(-1).se(7); // three ref frames in the cycle
    w.ue(1).bits(1, 0).ue(19).ue(14).bits(1, 1).bits(1, 1);
    w.bits(1, 1).ue(1).ue(2).ue(3).ue(4); // crop units of 1 for monochrome
    w.bits(1, 0);
    let sps = Sps::parse(&w.nal(&[0x67])).unwrap();
    assert_eq!((sps.sps_id, sps.chroma_format_idc), (3, 0));
    assert_eq!(
        (sps.bit_depth_luma_minus8, sps.bit_depth_chroma_minus8),
        (2, 2)
    );
    assert_eq!((sps.width, sps.height), (320 - 3, 240 - 7));
}

#[test]
fn bad_and_truncated_spss_are_errors_not_panics() {
    for fixture in [
        H264_HIGH_320X240_SPS,
        H264_MAIN_1920X1080_SPS,
        H264_HIGH444_330X250_SPS,
    ] {
        // The parser stops before the VUI, so a cut inside the VUI still parses; any cut
        // either fails or gives exactly the full SPS's fields, never a wrong size.
        let full = Sps::parse(fixture).unwrap();
        for len in 0..fixture.len() {
            match Sps::parse(&fixture[..len]) {
                Ok(sps) => assert_eq!(sps, full, "prefix of {len} bytes"),
                Err(_) => assert!(len < fixture.len() - 4, "prefix of {len} bytes"),
            }
        }
        assert!(Sps::parse(&fixture[..6]).is_err());
    }
    assert_eq!(
        Sps::parse(H264_TINY_PPS),
        Err(VideoError::BadSps("not an SPS NAL unit"))
    );
    assert_eq!(Sps::parse(&[0xe7, 0x64]), Err(VideoError::BadNalHeader));
    // Cropping more rows than the picture has.
    let mut w = BitWriter::default();
    w.bits(8, 66)
        .bits(8, 0xc0)
        .bits(8, 30)
        .ue(0)
        .ue(0)
        .ue(0)
        .ue(0)
        .ue(1)
        .bits(1, 0);
    w.ue(0)
        .ue(0)
        .bits(1, 1)
        .bits(1, 1)
        .bits(1, 1)
        .ue(0)
        .ue(0)
        .ue(0)
        .ue(9)
        .bits(1, 0);
    assert!(matches!(
        Sps::parse(&w.nal(&[0x67])),
        Err(VideoError::BadSps(_))
    ));
}

#[test]
fn nal_types_classify_keyframes_by_idr_only() {
    assert_eq!(
        classify(H264_TINY_VCL5_0),
        Ok(NalKind::Picture { key: true })
    );
    assert_eq!(
        classify(H264_TINY_VCL1_0),
        Ok(NalKind::Picture { key: false })
    );
    assert_eq!(classify(H264_TINY_SPS), Ok(NalKind::ParameterSet(NAL_SPS)));
    assert_eq!(classify(H264_TINY_PPS), Ok(NalKind::ParameterSet(NAL_PPS)));
    // A recovery-point SEI (payload type 6) is not a keyframe.
    assert_eq!(
        classify(&[0x06, 0x06, 0x01, 0xc4, 0x80]),
        Ok(NalKind::Other)
    );
    assert_eq!(classify(&[0x09, 0xf0]), Ok(NalKind::Other));
    assert_eq!(classify(&[]), Err(VideoError::BadNalHeader));
}

#[test]
fn avcc_matches_ffmpeg_for_high_profile() {
    let record = avcc(H264_HIGH_320X240_SPS, &[H264_HIGH_320X240_PPS]).unwrap();
    assert_eq!(record, H264_HIGH_320X240_AVCC);
}

#[test]
fn avcc_layout_for_baseline_has_no_extension() {
    let (sps, pps) = (H264_BASELINE_1280X720_SPS, H264_BASELINE_1280X720_PPS);
    let record = avcc(sps, &[pps]).unwrap();
    assert_eq!(&record[..6], &[1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
    assert_eq!(&record[6..8], &(sps.len() as u16).to_be_bytes());
    assert_eq!(&record[8..8 + sps.len()], sps);
    let at = 8 + sps.len();
    assert_eq!(record[at], 1);
    assert_eq!(&record[at + 1..at + 3], &(pps.len() as u16).to_be_bytes());
    assert_eq!(&record[at + 3..], pps);
    assert_eq!(record.len(), 11 + sps.len() + pps.len());
}

#[test]
fn avcc_is_read_back() {
    let (length_size, sets) = parse_avcc(H264_HIGH_320X240_AVCC).unwrap();
    assert_eq!(length_size, 4);
    assert_eq!(sets, vec![H264_HIGH_320X240_SPS, H264_HIGH_320X240_PPS]);
    let two_pps = avcc(H264_TINY_SPS, &[H264_TINY_PPS, H264_HIGH_320X240_PPS]).unwrap();
    let (_, sets) = parse_avcc(&two_pps).unwrap();
    assert_eq!(
        sets,
        vec![H264_TINY_SPS, H264_TINY_PPS, H264_HIGH_320X240_PPS]
    );

    let mut wrong_version = H264_HIGH_320X240_AVCC.to_vec();
    wrong_version[0] = 0;
    assert!(matches!(
        parse_avcc(&wrong_version),
        Err(VideoError::BadRecord(_))
    ));
    for len in 0..30 {
        assert!(
            parse_avcc(&H264_HIGH_320X240_AVCC[..len]).is_err(),
            "{len} bytes"
        );
    }
}

#[test]
fn pps_ids_are_read() {
    assert_eq!(pps_id(H264_TINY_PPS), Ok(0));
    let mut w = BitWriter::default();
    w.ue(5).ue(0).bits(1, 1);
    assert_eq!(pps_id(&w.nal(&[0x68])), Ok(5));
    assert!(pps_id(H264_TINY_SPS).is_err());
}
