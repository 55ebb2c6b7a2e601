//! Tests of the H.265 SPS parser, codec strings and hvcC records, on parameter sets that
//! libx265 wrote (see the fixtures) and on SPSs written bit by bit.

use super::*;
use crate::media::h26x::fixtures::*;

#[test]
fn libx265_spss_give_codec_string_and_size() {
    // Main profile (compatible with Main and Main 10: flags 1 and 2), main tier, progressive
    // and frame-only constraint flags (0x90). Levels as ffprobe reported them (level * 30).
    let cases = [
        (H265_MAIN_320X240_SPS, "hvc1.1.6.L60.90", 320, 240),
        (H265_MAIN_330X250_SPS, "hvc1.1.6.L60.90", 330, 250), // 336x256 coded, window
        (H265_MAIN_1920X1080_SPS, "hvc1.1.6.L120.90", 1920, 1080),
        (H265_TINY_SPS, "hvc1.1.6.L30.90", 64, 64),
    ];
    for (nal, codec, width, height) in cases {
        let sps = Sps::parse(nal).unwrap();
        assert_eq!(sps.codec_string(), codec);
        assert_eq!((sps.width, sps.height), (width, height), "{codec}");
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma_minus8), (1, 0));
    }
}

fn sample_sps() -> Sps {
    Sps::parse(H265_MAIN_320X240_SPS).unwrap()
}

#[test]
fn codec_string_follows_annex_e() {
    let mut sps = sample_sps();
    sps.general_profile_space = 1;
    sps.general_tier_flag = true;
    sps.general_profile_idc = 2;
    sps.general_profile_compatibility = 0x2000_0000; // flag 2 only: reversed, 4
    sps.general_level_idc = 153;
    sps.general_constraint = [0xb0, 0, 0, 0, 0, 0];
    assert_eq!(sps.codec_string(), "hvc1.A2.4.H153.B0");
    // Zero bytes inside are kept; only trailing ones go.
    sps.general_constraint = [0x90, 0, 0x08, 0, 0, 0];
    assert_eq!(sps.codec_string(), "hvc1.A2.4.H153.90.00.08");
    sps.general_constraint = [0; 6];
    sps.general_profile_space = 0;
    sps.general_tier_flag = false;
    sps.general_profile_compatibility = 0x6000_0000;
    assert_eq!(sps.codec_string(), "hvc1.2.6.L153");
    // Range extensions profile (4), flag 4: reversed 0x10.
    sps.general_profile_idc = 4;
    sps.general_profile_compatibility = 0x0800_0000;
    assert_eq!(sps.codec_string(), "hvc1.4.10.L153");
}

/// An SPS with three temporal sub-layers (profile info for the first, level for the
/// second), high tier, 4:2:2 at 10 bits, 1920x1088 coded with a window to 1916x1080.
fn sub_layer_sps() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(4, 0).bits(3, 2).bits(1, 0); // vps id, max_sub_layers_minus1 = 2, no nesting
    w.bits(2, 0).bits(1, 1).bits(5, 4); // profile space, high tier, RExt
    w.bits(32, 0x0800_0000);
    w.bits(16, 0x9000).bits(16, 0).bits(16, 0); // constraint flags
    w.bits(8, 123);
    w.bits(1, 1).bits(1, 0).bits(1, 0).bits(1, 1); // sub-layer 0: profile; 1: level
    for _ in 2..8 {
        w.bits(2, 0); // reserved_zero_2bits
    }
    w.bits(32, 0xffff_ffff)
        .bits(32, 0xffff_ffff)
        .bits(24, 0xff_ffff); // 88 bits of profile
    w.bits(8, 90); // sub_layer_level_idc
    w.ue(2).ue(2); // sps id 2, 4:2:2
    w.ue(1920).ue(1088);
    w.bits(1, 1).ue(1).ue(1).ue(0).ue(8); // window: 2+2 columns, 8 rows
    w.ue(2).ue(2); // 10 bits
    w.nal(&[0x42, 0x01])
}

#[test]
fn sub_layers_and_chroma_formats_are_read() {
    let sps = Sps::parse(&sub_layer_sps()).unwrap();
    assert_eq!(sps.max_sub_layers, 3);
    assert!(sps.general_tier_flag);
    assert_eq!(sps.codec_string(), "hvc1.4.10.H123.90");
    assert_eq!((sps.sps_id, sps.chroma_format_idc), (2, 2));
    assert_eq!(
        (sps.bit_depth_luma_minus8, sps.bit_depth_chroma_minus8),
        (2, 2)
    );
    assert_eq!((sps.width, sps.height), (1916, 1080));
    let record = hvcc(
        H265_MAIN_320X240_VPS,
        &sub_layer_sps(),
        &[H265_MAIN_320X240_PPS],
    )
    .unwrap();
    assert_eq!(record[1], 0x24); // space 0, tier 1, profile 4
    assert_eq!(&record[16..21], &[0xfe, 0xfa, 0xfa, 0, 0]); // 4:2:2, 10 bits, frame rate
    assert_eq!(record[21], (3 << 3) | 3); // three layers, not nested, 4-byte lengths
}

#[test]
fn bad_and_truncated_spss_are_errors_not_panics() {
    let full = Sps::parse(H265_MAIN_330X250_SPS).unwrap();
    for len in 0..H265_MAIN_330X250_SPS.len() {
        if let Ok(sps) = Sps::parse(&H265_MAIN_330X250_SPS[..len]) {
            assert_eq!(sps, full, "prefix of {len} bytes");
        }
    }
    assert!(Sps::parse(&H265_MAIN_330X250_SPS[..20]).is_err());
    assert_eq!(
        Sps::parse(H265_TINY_PPS),
        Err(VideoError::BadSps("not an SPS NAL unit"))
    );
    assert_eq!(Sps::parse(&[0x42]), Err(VideoError::BadNalHeader));
}

#[test]
fn irap_pictures_are_keyframes() {
    for t in 0u8..=40 {
        let nal = [t << 1, 0x01, 0xaf];
        let kind = classify(&nal).unwrap();
        let expected = match t {
            16..=23 => NalKind::Picture { key: true },
            0..=31 => NalKind::Picture { key: false },
            32..=34 => NalKind::ParameterSet(t),
            _ => NalKind::Other,
        };
        assert_eq!(kind, expected, "type {t}");
    }
    assert_eq!(
        classify(H265_TINY_VCL20_0),
        Ok(NalKind::Picture { key: true })
    );
    assert_eq!(
        classify(H265_TINY_VCL21_0),
        Ok(NalKind::Picture { key: true })
    );
    assert_eq!(
        classify(H265_TINY_VCL1_0),
        Ok(NalKind::Picture { key: false })
    );
    // An IDR of enhancement layer 1 is not for a single-layer decoder.
    assert_eq!(classify(&[19 << 1, 0x09, 0xaf]), Ok(NalKind::Other));
    assert_eq!(
        classify(&[0x80 | (19 << 1), 0x01]),
        Err(VideoError::BadNalHeader)
    );
}

#[test]
fn hvcc_matches_ffmpeg() {
    let record = hvcc(
        H265_MAIN_320X240_VPS,
        H265_MAIN_320X240_SPS,
        &[H265_MAIN_320X240_PPS],
    )
    .unwrap();
    assert_eq!(record, H265_MAIN_320X240_HVCC);
}

#[test]
fn hvcc_is_read_back() {
    let (length_size, sets) = parse_hvcc(H265_MAIN_320X240_HVCC).unwrap();
    assert_eq!(length_size, 4);
    assert_eq!(
        sets,
        vec![
            H265_MAIN_320X240_VPS,
            H265_MAIN_320X240_SPS,
            H265_MAIN_320X240_PPS
        ]
    );
    let mut wrong_version = H265_MAIN_320X240_HVCC.to_vec();
    wrong_version[0] = 0;
    assert!(matches!(
        parse_hvcc(&wrong_version),
        Err(VideoError::BadRecord(_))
    ));
    for len in 0..H265_MAIN_320X240_HVCC.len() {
        assert!(
            parse_hvcc(&H265_MAIN_320X240_HVCC[..len]).is_err(),
            "{len} bytes"
        );
    }
    assert_eq!(
        hvcc(
            H265_MAIN_320X240_SPS,
            H265_MAIN_320X240_SPS,
            &[H265_MAIN_320X240_PPS]
        ),
        Err(VideoError::Missing("VPS"))
    );
}

#[test]
fn pps_ids_are_read() {
    assert_eq!(pps_id(H265_TINY_PPS), Ok(0));
    let mut w = BitWriter::default();
    w.ue(7).ue(0);
    assert_eq!(pps_id(&w.nal(&[0x44, 0x01])), Ok(7));
    assert!(pps_id(H265_TINY_SPS).is_err());
}
