//! A camera's access unit as RTP payloads (RFC 6184 for H.264, RFC 7798 for H.265): a NAL
//! unit that fits goes whole, a larger one in fragmentation units; the parameter sets go in
//! front of a keyframe that lacks them. Built once per unit and shared by every WebRTC viewer
//! of the camera, which only number and encrypt them.

use std::sync::Arc;

use crate::hub::video::VideoUnit;
use crate::media::codec::{Codec, NalKind};
use crate::media::nal::{self, NalFormat};
use crate::media::{h264, h265, h26x};

/// The largest payload: str0m's datagram target (1150 bytes) less the SRTP tag, rounded down
/// to the SRTP block, as str0m's own packetizers size theirs; the RTP header and its
/// extensions fit in what str0m allows above its target.
pub const MAX_PAYLOAD: usize = {
    let rtp = str0m::DATAGRAM_MTU_TARGET - 16;
    rtp - rtp % 16
};
// A whole number of SRTP blocks, and room for the RTP header under a 1200-byte datagram.
const _: () = assert!(MAX_PAYLOAD % 16 == 0 && MAX_PAYLOAD + 64 <= 1200);

/// FU-A (RFC 6184 5.8) and FU (RFC 7798 4.4.3) packet types.
const H264_FU_A: u8 = 28;
const H265_FU: u8 = 49;
/// The start and end bits of a fragmentation unit's header.
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// The unit's payloads in order; the last carries the RTP marker. Empty when the unit's data
/// is not length-prefixed NAL units (the ingest guarantees it is).
pub fn payloads(codec: Codec, unit: &VideoUnit, max: usize) -> Vec<Arc<[u8]>> {
    let mut out = Vec::new();
    let nals: Result<Vec<&[u8]>, _> =
        nal::nal_units(NalFormat::LengthPrefixed, &unit.data).collect();
    let Ok(nals) = nals else {
        return out;
    };
    if unit.key && !nals.iter().any(|n| is_parameter_set(codec, n)) {
        for set in &unit.config.params.parameter_sets {
            push_nal(codec, set, max, &mut out);
        }
    }
    for n in nals {
        if !is_delimiter(codec, n) {
            push_nal(codec, n, max, &mut out);
        }
    }
    out
}

fn is_parameter_set(codec: Codec, n: &[u8]) -> bool {
    matches!(h26x::classify(codec, n), Ok(NalKind::ParameterSet(_)))
}

/// Access unit delimiters say nothing a packetized stream does not (the marker bit ends a
/// unit): they are left out.
fn is_delimiter(codec: Codec, n: &[u8]) -> bool {
    match codec {
        Codec::H264 => matches!(h264::nal_type(n), Ok(h264::NAL_AUD)),
        Codec::H265 => matches!(h265::nal_header(n), Ok((h265::NAL_AUD, _))),
    }
}

/// One NAL unit as one payload, or as fragmentation units of at most `max` bytes.
fn push_nal(codec: Codec, n: &[u8], max: usize, out: &mut Vec<Arc<[u8]>>) {
    let header_len = match codec {
        Codec::H264 => 1,
        Codec::H265 => 2,
    };
    if n.len() <= header_len {
        return;
    }
    if n.len() <= max {
        out.push(Arc::from(n));
        return;
    }
    // The fragmentation unit's payload header (the NAL's, with the FU type), then its FU
    // header (start and end bits, the NAL's type) before each piece of the NAL's body.
    let (head, nal_type): (&[u8], u8) = match codec {
        Codec::H264 => (&[(n[0] & 0xe0) | H264_FU_A], n[0] & 0x1f),
        Codec::H265 => (&[(n[0] & 0x81) | (H265_FU << 1), n[1]], (n[0] >> 1) & 0x3f),
    };
    let room = max.saturating_sub(head.len() + 1).max(1);
    let body = &n[header_len..];
    let pieces = body.len().div_ceil(room);
    for (i, piece) in body.chunks(room).enumerate() {
        let mut fu = 0;
        if i == 0 {
            fu |= FU_START;
        }
        if i + 1 == pieces {
            fu |= FU_END;
        }
        let mut p = Vec::with_capacity(head.len() + 1 + piece.len());
        p.extend_from_slice(head);
        p.push(fu | nal_type);
        p.extend_from_slice(piece);
        out.push(Arc::from(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::video::VideoConfig;
    use crate::media::clock::Stamp;
    use crate::media::h26x::fixtures::{H264_TINY_PPS, H264_TINY_SPS};
    use crate::media::h26x::VideoParams;
    use bytes::Bytes;

    fn unit(key: bool, nals: &[Vec<u8>]) -> VideoUnit {
        let mut data = Vec::new();
        for n in nals {
            data.extend_from_slice(&(n.len() as u32).to_be_bytes());
            data.extend_from_slice(n);
        }
        let params =
            VideoParams::from_parameter_sets(Codec::H264, [H264_TINY_SPS, H264_TINY_PPS]).unwrap();
        let config = Arc::new(VideoConfig {
            params: Arc::new(params),
            generation: 1,
        });
        VideoUnit::new(1, key, Bytes::from(data), Stamp::default(), config)
    }

    fn nal(first: u8, len: usize) -> Vec<u8> {
        let mut n = vec![first];
        n.extend((1..len).map(|i| i as u8));
        n
    }

    #[test]
    fn a_keyframe_without_parameter_sets_gets_them_in_front() {
        let idr = nal(0x65, 100);
        let p = payloads(
            Codec::H264,
            &unit(true, &[vec![0x09, 0xf0], idr.clone()]),
            1120,
        );
        assert_eq!(p.len(), 3, "SPS, PPS, IDR; the delimiter left out");
        assert_eq!(&p[0][..], H264_TINY_SPS);
        assert_eq!(&p[1][..], H264_TINY_PPS);
        assert_eq!(&p[2][..], &idr[..]);
        let delta = payloads(Codec::H264, &unit(false, &[nal(0x41, 50)]), 1120);
        assert_eq!(delta.len(), 1, "a delta unit gets no parameter sets");
    }

    #[test]
    fn a_large_h264_nal_goes_in_fu_a_pieces_that_rebuild_it() {
        let idr = nal(0x65, 3000);
        let p = payloads(
            Codec::H264,
            &unit(true, &[H264_TINY_SPS.to_vec(), idr.clone()]),
            1000,
        );
        let fus = &p[1..];
        assert_eq!(fus.len(), 4, "2999 body bytes in pieces of 998");
        let mut rebuilt = vec![(fus[0][0] & 0xe0) | (fus[0][1] & 0x1f)];
        for (i, fu) in fus.iter().enumerate() {
            assert!(fu.len() <= 1000);
            assert_eq!(fu[0], 0x60 | H264_FU_A, "NRI kept, type 28");
            assert_eq!(fu[1] & FU_START != 0, i == 0);
            assert_eq!(fu[1] & FU_END != 0, i == fus.len() - 1);
            rebuilt.extend_from_slice(&fu[2..]);
        }
        assert_eq!(rebuilt, idr);
    }

    #[test]
    fn a_large_h265_nal_goes_in_fu_pieces_that_rebuild_it() {
        // An IDR_W_RADL slice (type 19), layer 0, temporal id 1.
        let idr = {
            let mut n = vec![19 << 1, 0x01];
            n.extend((0..2500).map(|i| i as u8));
            n
        };
        let mut out = Vec::new();
        push_nal(Codec::H265, &idr, 1120, &mut out);
        assert_eq!(out.len(), 3);
        let mut rebuilt = vec![(out[0][0] & 0x81) | ((out[0][2] & 0x3f) << 1), out[0][1]];
        for (i, fu) in out.iter().enumerate() {
            assert_eq!((fu[0] >> 1) & 0x3f, H265_FU);
            assert_eq!(fu[1], 0x01);
            assert_eq!(fu[2] & 0x3f, 19);
            assert_eq!(fu[2] & FU_START != 0, i == 0);
            assert_eq!(fu[2] & FU_END != 0, i == 2);
            rebuilt.extend_from_slice(&fu[3..]);
        }
        assert_eq!(rebuilt, idr);
    }
}
