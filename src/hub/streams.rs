//! Which of a camera's streams serves a viewer: the small sub stream for tiles it fits, the
//! main stream otherwise, and the other one while the chosen one is down.
//!
//! The one place for the rule, read by the wall's sessions, snapshots and MJPEG streams. A
//! switch is safe at any time for the viewer: a JPEG is whole, and a video viewer of the new
//! stream starts at its current GOP's keyframe.

use super::{Camera, CameraState, Hub, Stream, StreamKind};

/// What a viewer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamReq {
    /// The sub stream when the viewer's `max_width` fits it, else the main stream.
    #[default]
    Auto,
    Main,
    Sub,
}

impl StreamReq {
    /// `auto`, `main` or `sub`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "main" => Some(Self::Main),
            "sub" => Some(Self::Sub),
            _ => None,
        }
    }
}

/// The stream that serves a viewer now.
pub struct Choice {
    pub stream: Stream,
    pub kind: StreamKind,
    /// The stream the viewer would get if both were up: `kind` differs while it is down.
    pub preferred: StreamKind,
    /// Whether the sub stream should be connected for this viewer: it is preferred, or it is
    /// the fallback for a main stream that is down.
    pub wants_sub: bool,
}

impl Choice {
    pub fn fallback(&self) -> bool {
        self.kind != self.preferred
    }
}

/// The stream `req` prefers for a viewer capped at `max_width`. A sub stream never opened has
/// no known width yet: any downscale of the main stream tries it (the next choice, once its
/// width is known, corrects it).
pub fn preferred(
    req: StreamReq,
    max_width: Option<u32>,
    main: &Camera,
    sub: Option<&Camera>,
) -> StreamKind {
    let Some(sub) = sub else {
        return StreamKind::Main;
    };
    match (req, max_width) {
        (StreamReq::Main, _) | (StreamReq::Auto, None) => StreamKind::Main,
        (StreamReq::Sub, _) => StreamKind::Sub,
        (StreamReq::Auto, Some(w)) => {
            let fits = match (sub.width(), main.width()) {
                (0, 0) => true,
                (0, m) => w < m,
                (s, _) => w <= s,
            };
            if fits {
                StreamKind::Sub
            } else {
                StreamKind::Main
            }
        }
    }
}

/// The stream that serves a viewer of camera `id` now: the preferred one while it streams (or
/// while neither does), else the other one while that one streams.
pub fn choose(hub: &Hub, id: &str, req: StreamReq, max_width: Option<u32>) -> Option<Choice> {
    let main = hub.stream_of(id, StreamKind::Main)?;
    // Most cameras have no sub stream: their main stream, without looking at states.
    let Some(sub) = hub.sub(id) else {
        return Some(Choice {
            stream: main,
            kind: StreamKind::Main,
            preferred: StreamKind::Main,
            wants_sub: false,
        });
    };
    let preferred = preferred(req, max_width, &main.camera, Some(&sub.camera));
    let up = |c: &Camera| c.state() == CameraState::Streaming;
    let main_up = up(&main.camera);
    let sub_up = up(&sub.camera);
    let (kind, stream) = match preferred {
        StreamKind::Sub if sub_up || !main_up => (StreamKind::Sub, sub),
        StreamKind::Main if !main_up && sub_up => (StreamKind::Sub, sub),
        _ => (StreamKind::Main, main),
    };
    Some(Choice {
        stream,
        kind,
        preferred,
        wants_sub: preferred == StreamKind::Sub || !main_up,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::Picture;

    fn hub() -> Hub {
        let cfg = crate::config::parse(
            &serde_json::json!({"cameras": [
                {"id": "a", "url": "rtsp://x/main", "sub": {"url": "rtsp://x/sub"}},
                {"id": "b", "url": "rtsp://x/b"}
            ]})
            .to_string(),
        )
        .unwrap();
        Hub::new(&cfg)
    }

    fn stream(cam: &Camera, w: u32, h: u32) {
        cam.publish(
            w,
            h,
            Picture::Jpeg {
                data: bytes::Bytes::from_static(b"x"),
                quality: Some(80),
            },
            crate::media::clock::Stamp::now(0),
        );
    }

    fn pick(hub: &Hub, req: StreamReq, w: Option<u32>) -> (StreamKind, bool, bool) {
        let c = choose(hub, "a", req, w).unwrap();
        (c.kind, c.fallback(), c.wants_sub)
    }

    #[test]
    fn small_tiles_get_the_sub_stream_and_the_other_one_stands_in() {
        let hub = hub();
        let main = hub.get("a").unwrap();
        let sub = hub.sub("a").unwrap().camera;
        use StreamKind::*;
        // Nothing streams yet: a downscaled tile tries the sub stream (width unknown).
        assert_eq!(pick(&hub, StreamReq::Auto, Some(320)), (Sub, false, true));
        stream(&main, 1280, 720);
        // The main stream is up, the sub stream still opening: the main one serves meanwhile,
        // and the sub stream is wanted.
        assert_eq!(pick(&hub, StreamReq::Auto, Some(320)), (Main, true, true));
        stream(&sub, 320, 180);
        assert_eq!(pick(&hub, StreamReq::Auto, Some(320)), (Sub, false, true));
        // Wider than the sub stream, or no cap (a focused tile): the main stream.
        assert_eq!(pick(&hub, StreamReq::Auto, Some(640)), (Main, false, false));
        assert_eq!(pick(&hub, StreamReq::Auto, None), (Main, false, false));
        assert_eq!(pick(&hub, StreamReq::Sub, None), (Sub, false, true));
        assert_eq!(pick(&hub, StreamReq::Main, Some(100)), (Main, false, false));
        // The sub stream fails: the small tile falls back to the main stream.
        sub.set_idle();
        assert_eq!(pick(&hub, StreamReq::Auto, Some(320)), (Main, true, true));
        // The main stream fails while the sub stream is up: the big tile gets the sub one.
        stream(&sub, 320, 180);
        main.set_stopped();
        assert_eq!(pick(&hub, StreamReq::Auto, None), (Sub, true, true));
        // A camera without a sub stream always gets its main stream.
        let b = choose(&hub, "b", StreamReq::Sub, Some(10)).unwrap();
        assert_eq!((b.kind, b.wants_sub), (Main, false));
        assert!(choose(&hub, "nope", StreamReq::Auto, None).is_none());
    }
}
