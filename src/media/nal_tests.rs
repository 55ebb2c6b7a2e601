//! Tests of NAL splitting, re-framing, RBSP and the bit reader, on real H.264 units.

use super::*;
use crate::media::h26x::fixtures::*;

fn collect(format: NalFormat, data: &[u8]) -> Result<Vec<&[u8]>, NalError> {
    nal_units(format, data).collect()
}

#[test]
fn annexb_splits_on_three_and_four_byte_start_codes() {
    let mut au = vec![0xaa, 0xbb]; // junk before the first start code is skipped
    au.extend_from_slice(&[0, 0, 0, 1]);
    au.extend_from_slice(H264_TINY_SPS);
    au.extend_from_slice(&[0, 0, 1]);
    au.extend_from_slice(H264_TINY_PPS);
    au.extend_from_slice(&[0, 0, 1, 0, 0, 1]); // an empty unit between two codes is skipped
    au.extend_from_slice(H264_TINY_VCL5_0);
    au.extend_from_slice(&[0, 0]); // trailing_zero_8bits are not part of the unit
    let units = collect(NalFormat::AnnexB, &au).unwrap();
    assert_eq!(units, vec![H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0]);
}

#[test]
fn annexb_without_start_code_is_an_error_and_empty_is_empty() {
    assert_eq!(
        collect(NalFormat::AnnexB, &[0x65, 0x88, 0x84]),
        Err(NalError::NoStartCode(3))
    );
    assert_eq!(collect(NalFormat::AnnexB, &[]), Ok(vec![]));
    assert_eq!(collect(NalFormat::LengthPrefixed, &[]), Ok(vec![]));
}

#[test]
fn length_prefixed_splits_and_refuses_bad_lengths() {
    let mut au = Vec::new();
    write_units(
        NalFormat::LengthPrefixed,
        [H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL1_0],
        &mut au,
    )
    .unwrap();
    assert_eq!(&au[..4], &(H264_TINY_SPS.len() as u32).to_be_bytes());
    let units = collect(NalFormat::LengthPrefixed, &au).unwrap();
    assert_eq!(units, vec![H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL1_0]);

    let mut overrun = au.clone();
    overrun.truncate(au.len() - 1);
    assert!(matches!(
        collect(NalFormat::LengthPrefixed, &overrun),
        Err(NalError::LengthOverrun { .. })
    ));
    let mut trailing = au.clone();
    trailing.extend_from_slice(&[0, 0]);
    assert_eq!(
        collect(NalFormat::LengthPrefixed, &trailing),
        Err(NalError::TrailingBytes(2))
    );
    assert_eq!(
        collect(NalFormat::LengthPrefixed, &[0, 0, 0, 0, 0x65]),
        Err(NalError::Empty(0))
    );
    // After an error the iterator ends instead of reading on from a wrong position.
    let mut after_error = nal_units(NalFormat::LengthPrefixed, &overrun[..3]);
    assert!(after_error.next().unwrap().is_err());
    assert!(after_error.next().is_none());
}

#[test]
fn annexb_and_length_prefixed_convert_both_ways() {
    let units = [H264_TINY_SPS, H264_TINY_PPS, H264_TINY_VCL5_0];
    let mut annexb = Vec::new();
    write_units(NalFormat::AnnexB, units, &mut annexb).unwrap();
    let avcc = convert(NalFormat::AnnexB, NalFormat::LengthPrefixed, &annexb).unwrap();
    assert_eq!(avcc.len(), annexb.len());
    assert_eq!(collect(NalFormat::LengthPrefixed, &avcc).unwrap(), units);
    let back = convert(NalFormat::LengthPrefixed, NalFormat::AnnexB, &avcc).unwrap();
    assert_eq!(back, annexb);
}

#[test]
fn start_codes_inside_zero_runs_are_found() {
    // 00 00 00 00 01: the code starts two bytes in; the zeros before it end the first unit.
    let au = [0, 0, 1, 0x09, 0xf0, 0, 0, 0, 0, 1, 0x67, 0x42];
    let units = collect(NalFormat::AnnexB, &au).unwrap();
    assert_eq!(units, vec![&[0x09, 0xf0][..], &[0x67, 0x42][..]]);
}

#[test]
fn rbsp_drops_emulation_prevention_bytes_only() {
    // The 320x240 SPS holds two `00 00 03` sequences.
    let raw = H264_HIGH_320X240_SPS;
    let clean = rbsp(raw);
    assert!(matches!(clean, std::borrow::Cow::Owned(_)));
    assert_eq!(clean.len(), raw.len() - 2);
    assert!(!clean.windows(3).any(|w| w == [0, 0, 3]));
    assert_eq!(&clean[..12], &raw[..12]);
    // 00 00 03 03: only the first 03 goes.
    assert_eq!(&rbsp(&[0, 0, 3, 3, 0, 0, 3])[..], &[0, 0, 3, 0, 0]);
    assert!(matches!(rbsp(H264_TINY_PPS), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn bit_reader_reads_exp_golomb_codes() {
    // 1 | 010 | 011 | 00100 | 00101 | 0001000 -> ue 0, 1, 2, 3, 4, 7
    // bits: 1010 0110 0100 0010 1000 1000
    let data = [0b1010_0110, 0b0100_0010, 0b1000_1000];
    let mut r = BitReader::new(&data);
    let values: Vec<u32> = (0..6).map(|_| r.ue("test").unwrap()).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4, 7]);
    assert_eq!(r.remaining(), 0);
    assert_eq!(r.bit("end"), Err(NalError::EndOfData("end")));

    // se: codes 1, 2, 3, 4 are 1, -1, 2, -2.
    let data = [0b0100_1100, 0b1000_0000];
    let mut r = BitReader::new(&data);
    let signed: Vec<i32> = (0..3).map(|_| r.se("test").unwrap()).collect();
    assert_eq!(signed, vec![1, -1, 2]);

    let mut r = BitReader::new(&[0xa5, 0x0f]);
    assert_eq!(r.bits(4, "x").unwrap(), 0xa);
    assert_eq!(r.bits(12, "x").unwrap(), 0x50f);
    assert_eq!(r.bits(1, "x"), Err(NalError::EndOfData("x")));
}

#[test]
fn bit_reader_refuses_overlong_codes_and_short_data() {
    let zeros = [0u8; 8];
    assert_eq!(
        BitReader::new(&zeros).ue("long"),
        Err(NalError::BadExpGolomb("long"))
    );
    // Largest valid code: 31 zeros, a one, 31 ones.
    let mut bits = vec![0u8; 3];
    bits.extend_from_slice(&[0b0000_0001, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(BitReader::new(&bits).ue("max").unwrap(), u32::MAX - 1);
    // A code cut off in its suffix.
    assert_eq!(
        BitReader::new(&[0b0000_0001]).ue("cut"),
        Err(NalError::EndOfData("cut"))
    );
}
