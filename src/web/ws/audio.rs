//! A WebSocket client's audio of one camera (protocol version 3): which of the camera's own
//! audio frames go to it, and the `audio_config` event before the first frame of each track
//! (a camera that reconnects may come back with another codec or rate). Frames go as they
//! came, never decoded; a codec the client did not list is not sent at all.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use super::protocol::framed;
use crate::hub::{AudioFrame, AudioInfo};

/// One camera's audio for one client.
#[derive(Debug)]
pub struct AudioOut {
    /// The codecs the client decodes (`aac`, `opus`, `pcmu`, `pcma`).
    codecs: Vec<&'static str>,
    /// The track last announced with `audio_config`.
    announced: Option<Arc<AudioInfo>>,
}

impl AudioOut {
    pub fn new(codecs: Vec<&'static str>) -> Self {
        Self {
            codecs,
            announced: None,
        }
    }

    /// The codecs the client listed.
    pub fn codecs(&self) -> &[&'static str] {
        &self.codecs
    }

    /// What goes to the client for `frame` of `camera`: the `audio_config` event when its
    /// track is new to the client, and the frame; nothing when the client does not decode
    /// its codec.
    pub fn admit(&mut self, camera: &str, frame: &AudioFrame) -> Option<(Option<Value>, Bytes)> {
        if !self.codecs.contains(&frame.info.codec.as_str()) {
            return None;
        }
        let codec = frame.info.codec_string()?;
        let mut config = None;
        if !self
            .announced
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, &frame.info))
        {
            // The same track again after a reconnect needs no new config.
            if self.announced.as_deref() != Some(&*frame.info) {
                config = Some(config_event(camera, &frame.info, &codec));
            }
            self.announced = Some(frame.info.clone());
        }
        Some((config, frame.wire(|f| frame_message(camera, f))))
    }
}

/// `audio_config`: what a decoder needs for the camera's audio (WebCodecs' `AudioDecoder`
/// configuration: `codec`, `sampleRate`, `numberOfChannels`, `description`).
pub fn config_event(camera: &str, info: &AudioInfo, codec: &str) -> Value {
    let description = (!info.description.is_empty())
        .then(|| base64::engine::general_purpose::STANDARD.encode(&info.description));
    json!({
        "type": "audio_config",
        "camera": camera,
        "codec": codec,
        "family": info.codec,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "description": description,
    })
}

#[derive(Serialize)]
struct AudioHeader<'a> {
    camera: &'a str,
    kind: &'static str,
    seq: u64,
    ts: u64,
    pts: i64,
}

/// One audio frame in the shared binary framing (`kind: "audio"`).
pub fn frame_message(camera: &str, frame: &AudioFrame) -> Bytes {
    let header = serde_json::to_vec(&AudioHeader {
        camera,
        kind: "audio",
        seq: frame.seq,
        ts: frame.stamp.captured_unix_ms,
        pts: frame.stamp.pts_us,
    })
    .unwrap_or_default();
    framed(&header, &frame.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clock::Stamp;

    fn frame(info: &Arc<AudioInfo>, seq: u64) -> AudioFrame {
        let stamp = Stamp {
            pts_us: 20_000 * seq as i64,
            captured_unix_ms: 1000,
        };
        AudioFrame::new(Bytes::from_static(&[1, 2, 3]), stamp, seq, info.clone())
    }

    fn track(codec: &str) -> Arc<AudioInfo> {
        Arc::new(AudioInfo {
            codec: codec.into(),
            sample_rate: 8000,
            channels: 1,
            description: Vec::new(),
        })
    }

    fn header(m: &Bytes) -> Value {
        let n = u16::from_be_bytes([m[1], m[2]]) as usize;
        serde_json::from_slice(&m[3..3 + n]).unwrap()
    }

    #[test]
    fn a_config_goes_before_the_first_frame_of_each_track() {
        let mut out = AudioOut::new(vec!["pcmu"]);
        let t = track("pcmu");
        let (c, m) = out.admit("door", &frame(&t, 1)).unwrap();
        let c = c.expect("a config first");
        assert_eq!(c["type"], "audio_config");
        assert_eq!(c["codec"], "ulaw");
        assert_eq!(c["sample_rate"], 8000);
        let h = header(&m);
        assert_eq!(
            (h["kind"].as_str(), h["seq"].as_u64()),
            (Some("audio"), Some(1))
        );
        assert_eq!(h["pts"], 20_000);
        assert_eq!(&m[m.len() - 3..], &[1, 2, 3]);
        let config = |out: &mut AudioOut, t: &Arc<AudioInfo>, seq| {
            out.admit("door", &frame(t, seq)).unwrap().0.is_some()
        };
        assert!(!config(&mut out, &t, 2), "no config again");
        // A reconnect with the same track: no config; another track: a config.
        assert!(!config(&mut out, &track("pcmu"), 3));
        let mut other = (*track("pcmu")).clone();
        other.sample_rate = 16000;
        assert!(config(&mut out, &Arc::new(other), 4));
    }

    #[test]
    fn a_codec_the_client_does_not_decode_is_not_sent() {
        let mut out = AudioOut::new(vec!["aac"]);
        assert!(out.admit("door", &frame(&track("pcmu"), 1)).is_none());
        let mut any = AudioOut::new(vec!["aac", "opus", "pcmu", "pcma"]);
        assert!(any.admit("door", &frame(&track("g726"), 1)).is_none());
    }
}
