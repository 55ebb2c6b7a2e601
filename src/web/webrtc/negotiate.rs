//! Reading what an answer settled: which video section sends to the viewer, and which of the
//! offer's payload types carries the camera's codec.

use str0m::format::Codec as RtcCodec;
use str0m::media::{Mid, Pt};
use str0m::Rtc;

use crate::media::codec::Codec;

/// The mid of the first video section of an answer that sends (the offer's `recvonly` or
/// `sendrecv` video, not rejected).
pub(super) fn sending_video_mid(answer: &str) -> Option<Mid> {
    let mut video = false;
    let mut mid = None;
    let mut sends = false;
    let mut found = None;
    let mut close = |video: bool, mid: &mut Option<String>, sends: bool| {
        if found.is_none() && video && sends {
            found = mid.take();
        }
    };
    for line in answer.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            close(video, &mut mid, sends);
            // A rejected section has port 0.
            video = m.starts_with("video ") && !m.starts_with("video 0 ");
            mid = None;
            sends = false;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_string());
        } else if line.starts_with("a=sendonly") || line.starts_with("a=sendrecv") {
            sends = true;
        }
    }
    close(video, &mut mid, sends);
    found.map(|m| Mid::from(m.as_str()))
}

/// The negotiated payload type for the camera's codec: packetization-mode 1 (cameras send
/// NAL units bigger than a packet), preferring the profile the offer lists first. Browsers
/// decode High and Main whatever `profile-level-id` they offered, so any H.264 type serves.
pub(super) fn pick_pt(rtc: &Rtc, mid: Mid, codec: Codec) -> Option<Pt> {
    let want = match codec {
        Codec::H264 => RtcCodec::H264,
        Codec::H265 => RtcCodec::H265,
    };
    // What str0m's frame writer would offer (`Writer::payload_params`): the configured types
    // the peer's answer kept for this media.
    let remote = rtc.media(mid)?.remote_pts().to_vec();
    let params: Vec<_> = rtc
        .codec_config()
        .params()
        .iter()
        .filter(|p| remote.contains(&p.pt()) && p.spec().codec == want)
        .cloned()
        .collect();
    params
        .iter()
        .find(|p| want != RtcCodec::H264 || p.spec().format.packetization_mode == Some(1))
        .map(|p| p.pt())
}
