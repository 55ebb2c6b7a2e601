//! Unit tests of jpeg.rs.
use super::*;

#[test]
fn validation_accepts_whole_jpegs_and_refuses_damaged_ones() {
    let (y, u, v, strides) = planes(40, 200, 0);
    let p = YuvPlanes {
        planes: [&y, &u, &v],
        strides,
        width: 64,
        height: 48,
        subsamp: Subsamp::Sub2x2,
        limited_range: false,
    };
    let good = encode_planes(&p, 80, 1).unwrap().data.to_vec();
    assert_eq!(validate_jpeg(&good), Ok((64, 48)));
    let mut padded = good.clone();
    padded.extend_from_slice(b"\r\n");
    assert_eq!(validate_jpeg(&padded), Ok((64, 48)));
    // Cut short anywhere: in the headers, in the scan, or just before EOI.
    for cut in [3, 20, good.len() / 2, good.len() - 1, good.len() - 2] {
        assert!(
            validate_jpeg(&good[..cut]).is_err(),
            "cut at {cut} of {}",
            good.len()
        );
    }
    let mut garbage = good.clone();
    garbage.extend_from_slice(&[1, 2, 3]);
    assert_eq!(validate_jpeg(&garbage), Err(JpegInvalid::TrailingData(3)));
    assert_eq!(validate_jpeg(b"\x89PNG...."), Err(JpegInvalid::NoSoi));
    assert_eq!(
        validate_jpeg(&[0xFF, 0xD8, 0xFF, 0xD9]),
        Err(JpegInvalid::NoScan)
    );
    // Whatever passes the check decodes.
    assert_eq!(decode_rgb(&good).width, 64);
}

fn decode_rgb(data: &[u8]) -> turbojpeg::Image<Vec<u8>> {
    turbojpeg::decompress(data, turbojpeg::PixelFormat::RGB).unwrap()
}

/// A 64x48 4:2:0 picture: left half at luma `a`, right half at `b`, neutral chroma.
fn planes(a: u8, b: u8, stride_pad: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, [usize; 3]) {
    let (w, h) = (64, 48);
    let ys = w + stride_pad;
    let cs = w / 2 + stride_pad;
    let mut y = vec![0u8; ys * h];
    for r in 0..h {
        for c in 0..w {
            y[r * ys + c] = if c < w / 2 { a } else { b };
        }
    }
    (
        y,
        vec![128; cs * h / 2],
        vec![128; cs * h / 2],
        [ys, cs, cs],
    )
}

#[test]
fn range_expansion_matches_the_float_definition_for_every_input() {
    for v in 0..=255u8 {
        let f = f32::from(v);
        let luma = ((f - 16.0) * 255.0 / 219.0).round().clamp(0.0, 255.0) as u8;
        let chroma = ((f - 128.0) * 255.0 / 224.0 + 128.0)
            .round()
            .clamp(0.0, 255.0) as u8;
        assert_eq!(Expand::Luma.apply(v), luma, "luma {v}");
        assert_eq!(Expand::Chroma.apply(v), chroma, "chroma {v}");
    }
}

#[test]
fn limited_range_black_and_white_come_out_full_range() {
    let (y, u, v, strides) = planes(16, 235, 8);
    let p = YuvPlanes {
        planes: [&y, &u, &v],
        strides,
        width: 64,
        height: 48,
        subsamp: Subsamp::Sub2x2,
        limited_range: true,
    };
    let jpeg = encode_planes(&p, 95, 1).unwrap();
    assert_eq!((jpeg.width, jpeg.height), (64, 48));
    let img = decode_rgb(&jpeg.data);
    let px = |x: usize, y: usize| img.pixels[(y * img.width + x) * 3];
    assert!(px(4, 24) <= 3, "black came out {}", px(4, 24));
    assert!(px(60, 24) >= 252, "white came out {}", px(60, 24));
}

#[test]
fn full_range_is_not_expanded() {
    let (y, u, v, strides) = planes(16, 235, 0);
    let p = YuvPlanes {
        planes: [&y, &u, &v],
        strides,
        width: 64,
        height: 48,
        subsamp: Subsamp::Sub2x2,
        limited_range: false,
    };
    let img = decode_rgb(&encode_planes(&p, 95, 1).unwrap().data);
    let v = img.pixels[(24 * img.width + 4) * 3];
    assert!((13..=19).contains(&v), "{v}");
}

#[test]
fn downscale_halves_and_quarters_with_odd_sizes() {
    let (w, h) = (101, 57);
    let y = vec![200u8; w * h];
    let c = vec![128u8; w.div_ceil(2) * h.div_ceil(2)];
    let p = YuvPlanes {
        planes: [&y, &c, &c],
        strides: [w, w.div_ceil(2), w.div_ceil(2)],
        width: w,
        height: h,
        subsamp: Subsamp::Sub2x2,
        limited_range: false,
    };
    for (scale, want) in [(1u8, (101u32, 57u32)), (2, (51, 29)), (4, (26, 15))] {
        let j = encode_planes(&p, 80, scale).unwrap();
        assert_eq!((j.width, j.height), want);
        assert_eq!(jpeg_size(&j.data).unwrap(), want);
        let img = decode_rgb(&j.data);
        assert!((img.pixels[0] as i32 - 200).abs() <= 2);
    }
}

#[test]
fn short_planes_are_refused_not_read_past() {
    let y = vec![0u8; 10];
    let p = YuvPlanes {
        planes: [&y, &y, &y],
        strides: [64, 32, 32],
        width: 64,
        height: 48,
        subsamp: Subsamp::Sub2x2,
        limited_range: false,
    };
    assert!(encode_planes(&p, 80, 1).is_err());
}

#[test]
fn quality_estimate_and_transcode() {
    let (y, u, v, strides) = planes(100, 150, 0);
    let p = YuvPlanes {
        planes: [&y, &u, &v],
        strides,
        width: 64,
        height: 48,
        subsamp: Subsamp::Sub2x2,
        limited_range: false,
    };
    for q in [30u8, 50, 70, 85, 95] {
        let j = encode_planes(&p, q, 1).unwrap();
        let est = estimate_quality(&j.data).unwrap();
        assert!((est as i32 - q as i32).abs() <= 1, "q {q} estimated {est}");
    }
    let src = encode_planes(&p, 95, 1).unwrap();
    let t = transcode_jpeg(&src.data, 60, 2).unwrap();
    assert_eq!((t.width, t.height), (32, 24));
    assert!(t.data.starts_with(&[0xFF, 0xD8]));
    let est = estimate_quality(&t.data).unwrap();
    assert!((est as i32 - 60).abs() <= 1);
    assert_eq!(estimate_quality(b"not a jpeg"), None);
    assert!(transcode_jpeg(b"\xFF\xD8garbage", 50, 1).is_err());
}
