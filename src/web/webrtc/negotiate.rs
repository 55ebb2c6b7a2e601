//! Reading what an answer settled: which video (and audio) section sends to the viewer, which
//! of the offer's payload types carries the camera's codec, and one media stream for both
//! sections so that the browser plays them in sync.

use str0m::format::Codec as RtcCodec;
use str0m::media::{Mid, Pt};
use str0m::Rtc;

use crate::media::codec::Codec;

/// The mid of the first video section of an answer that sends (the offer's `recvonly` or
/// `sendrecv` video, not rejected).
pub(super) fn sending_video_mid(answer: &str) -> Option<Mid> {
    sending_mid(answer, "video")
}

/// The mid of the first section of `kind` (`video`, `audio`) of an answer that sends.
pub(super) fn sending_mid(answer: &str, kind: &str) -> Option<Mid> {
    let open = format!("{kind} ");
    let rejected = format!("{kind} 0 ");
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
            video = m.starts_with(&open) && !m.starts_with(&rejected);
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

/// The negotiated payload type for `codec` in section `mid` (audio: one payload type per
/// codec).
pub(super) fn pick_audio_pt(rtc: &Rtc, mid: Mid, codec: RtcCodec) -> Option<Pt> {
    let remote = rtc.media(mid)?.remote_pts().to_vec();
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| remote.contains(&p.pt()) && p.spec().codec == codec)
        .map(|p| p.pt())
}

/// `answer` with its audio sections inactive: the camera has no track for them (none, or
/// one in a codec the offer lacks). The video plays on; a receiver expects no sound.
pub(super) fn inactive_audio(answer: &str) -> String {
    let mut audio = false;
    let mut out = String::with_capacity(answer.len());
    for line in answer.split_inclusive('\n') {
        if let Some(m) = line.strip_prefix("m=") {
            audio = m.starts_with("audio ");
        }
        let body = line.trim_end_matches(['\r', '\n']);
        if audio && matches!(body, "a=sendonly" | "a=sendrecv" | "a=recvonly") {
            out.push_str("a=inactive");
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// `answer` with every section in the first section's media stream (its `msid` stream id):
/// a browser synchronizes the audio and video of one stream (lip sync, from the RTCP sender
/// reports), and str0m draws a stream id per section.
pub(super) fn one_stream(answer: &str) -> String {
    let first = answer.lines().find_map(|l| {
        l.strip_prefix("a=msid:")
            .and_then(|v| v.split_whitespace().next())
    });
    let Some(stream) = first.map(str::to_string) else {
        return answer.to_string();
    };
    let mut out = String::with_capacity(answer.len());
    for line in answer.split_inclusive('\n') {
        let (body, end) = match line.find(['\r', '\n']) {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        if body.starts_with("a=msid-semantic:") {
            out.push_str(&format!("a=msid-semantic: WMS {stream}"));
        } else if let Some(v) = body.strip_prefix("a=msid:") {
            let track = v.split_whitespace().nth(1).unwrap_or("");
            out.push_str(&format!("a=msid:{stream} {track}"));
        } else if let (true, Some(at)) = (body.starts_with("a=ssrc:"), body.find(" msid:")) {
            let track = body[at + 6..].split_whitespace().nth(1).unwrap_or("");
            out.push_str(&format!("{} msid:{stream} {track}", &body[..at]));
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    out
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
