//! Tests of a WebRTC viewer's audio on a made-up clock: the camera's frames reach a client
//! that offered audio, one packet each on the camera's clock, in the video's media stream
//! (lip sync); a camera without audio answers the section without a codec and still plays.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{unit, Pair};
use super::*;
use crate::hub::{AudioFrame, AudioInfo};
use crate::media::clock::Stamp;

fn pcmu_frame(seq: u64, pts_us: i64, info: &Arc<AudioInfo>) -> AudioFrame {
    AudioFrame::new(
        bytes::Bytes::from(vec![seq as u8; 160]),
        Stamp {
            pts_us,
            captured_unix_ms: 1_000,
        },
        seq,
        info.clone(),
    )
}

fn pcmu() -> Arc<AudioInfo> {
    Arc::new(AudioInfo {
        codec: "pcmu".into(),
        sample_rate: 8000,
        channels: 1,
        description: Vec::new(),
    })
}

fn sends(audio: Option<AudioSend>) -> Sends {
    Sends {
        video: Codec::H264,
        audio,
    }
}

/// The stream id of every `a=msid:` line of an SDP.
fn stream_ids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=msid:"))
        .filter_map(|v| v.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn a_cameras_g711_reaches_the_viewer_on_its_clock_in_the_videos_stream() {
    let (mut p, answer) = Pair::with(sends(Some(AudioSend::Pcmu)), true);
    assert_eq!(p.peer.audio(), Some(AudioSend::Pcmu));
    let ids = stream_ids(&answer);
    assert_eq!(ids.len(), 2, "both sections send: {answer}");
    assert_eq!(ids[0], ids[1], "one media stream for audio and video");
    assert!(answer.contains("PCMU/8000"), "{answer}");
    p.connect();
    p.send_gop(&[unit(1, true)]);
    let info = pcmu();
    for i in 0..5u64 {
        p.peer
            .send_audio(p.now, &pcmu_frame(i, 40_000 + i as i64 * 20_000, &info));
        p.run_for(Duration::from_millis(20));
    }
    assert_eq!(p.audio.len(), 5, "every frame arrives");
    let steps: Vec<u64> = p.audio.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(steps, [160; 4], "20 ms apart at 8 kHz");
    assert_eq!(p.audio[3].1, vec![3u8; 160], "as the camera sent it");
    assert_eq!(p.peer.counts.audio_frames, 5);
    assert_eq!(p.frames.len(), 1, "the video goes on beside it");
}

#[test]
fn frames_of_another_codec_or_before_the_connection_are_not_sent() {
    let (mut p, _) = Pair::with(sends(Some(AudioSend::Opus)), true);
    let opus = Arc::new(AudioInfo {
        codec: "opus".into(),
        sample_rate: 48_000,
        channels: 2,
        description: Vec::new(),
    });
    p.peer.send_audio(p.now, &pcmu_frame(0, 0, &opus));
    assert_eq!(p.peer.counts.audio_frames, 0, "not connected yet");
    p.connect();
    p.peer.send_audio(p.now, &pcmu_frame(1, 20_000, &pcmu()));
    assert_eq!(
        p.peer.counts.audio_frames, 0,
        "PCMU does not fit an Opus section"
    );
    p.peer.send_audio(p.now, &pcmu_frame(2, 40_000, &opus));
    p.run_for(Duration::from_millis(20));
    assert_eq!(p.audio.len(), 1);
}

#[test]
fn a_camera_without_audio_answers_the_section_without_sound_and_plays_video() {
    let (mut p, answer) = Pair::with(sends(None), true);
    assert_eq!(p.peer.audio(), None);
    assert_eq!(
        super::super::negotiate::sending_mid(&answer, "audio"),
        None,
        "the audio section does not send: {answer}"
    );
    p.connect();
    p.send_gop(&[unit(1, true), unit(2, false)]);
    assert_eq!(p.frames.len(), 2);
    // A client that offered no audio gets none, whatever the camera has.
    let (p, answer) = Pair::with(sends(Some(AudioSend::Pcmu)), false);
    assert_eq!(p.peer.audio(), None);
    assert!(!answer.contains("m=audio"));
}

#[test]
fn one_stream_rewrites_every_stream_id_and_keeps_the_rest() {
    let sdp = "v=0\r\na=msid-semantic: WMS a b\r\nm=audio 9 X 0\r\na=msid:a t1\r\n\
               a=ssrc:1 cname:c\r\na=ssrc:1 msid:a t1\r\nm=video 9 X 96\r\na=msid:b t2\r\n\
               a=ssrc:2 msid:b t2\r\n";
    let out = super::super::negotiate::one_stream(sdp);
    assert_eq!(
        out,
        "v=0\r\na=msid-semantic: WMS a\r\nm=audio 9 X 0\r\na=msid:a t1\r\n\
         a=ssrc:1 cname:c\r\na=ssrc:1 msid:a t1\r\nm=video 9 X 96\r\na=msid:a t2\r\n\
         a=ssrc:2 msid:a t2\r\n"
    );
    assert_eq!(super::super::negotiate::one_stream("v=0\r\n"), "v=0\r\n");
}

#[test]
fn audio_goes_with_codecs_webrtc_takes() {
    let info = |codec: &str, rate| AudioInfo {
        codec: codec.into(),
        sample_rate: rate,
        channels: 1,
        description: Vec::new(),
    };
    assert_eq!(
        AudioSend::for_track(&info("pcmu", 8000)),
        Some((AudioSend::Pcmu, false))
    );
    assert_eq!(
        AudioSend::for_track(&info("pcma", 8000)),
        Some((AudioSend::Pcma, false))
    );
    assert_eq!(
        AudioSend::for_track(&info("aac", 44_100)),
        Some((AudioSend::Opus, true))
    );
    assert_eq!(AudioSend::for_track(&info("pcmu", 16_000)), None);
    assert_eq!(AudioSend::for_track(&info("l16", 8000)), None);
}
