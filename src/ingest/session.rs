//! One session's publishing, whatever reads its source: each event onto the camera's clock and
//! into the hub, and the decoder of a stream decoded on demand, run inline on a session thread
//! or handed to the decode pool by a source read on the camera's task.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::decode_pool::PooledDecoder;
use super::on_demand::publish_decoded;
use super::on_demand::OnDemandDecoder;
use super::seam::{SessionEnd, SessionError, SourceEvent, VideoStream};
use crate::hub::video::FeedPicture;
use crate::hub::Camera;
use crate::media::clock::{Stamp, TimeBase, Timeline};
use crate::media::tier::Thinner;

/// Where the decoder of a stream decoded on demand runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecodeOn {
    /// On the session's own thread, between reads (sources read on a thread).
    SessionThread,
    /// On the decode pool (sources read on the camera's task, which must not block).
    Pool,
}

enum Decoding {
    None,
    Inline(OnDemandDecoder),
    Pool(PooledDecoder),
}

/// No GOP outlives the session it came from, and no decoder runs after it.
struct StopVideo(Arc<Camera>);

impl Drop for StopVideo {
    fn drop(&mut self) {
        self.0.video().stop();
        self.0.demand().session_ended();
        self.0.audio().stop();
    }
}

/// The publishing side of one session.
pub(super) struct Publisher<'a> {
    /// Declared before `_stop`, so dropped first: a snapshot's warm-up cannot set the
    /// demand's mode after the session's end turned it off.
    decoding: Decoding,
    _stop: StopVideo,
    cam: &'a Arc<Camera>,
    generation: u64,
    clock: &'a mut Timeline,
    base: TimeBase,
    /// Pictures of a source whose units are stamped take their unit's place on the clock;
    /// pictures of other sources (MJPEG, raw) are the units themselves.
    units_stamped: bool,
    /// The camera's own cap: frames beyond it are dropped before anything is spent on them.
    thinner: Thinner,
    decoded: Vec<FeedPicture>,
}

impl<'a> Publisher<'a> {
    /// A session opened `codec` (and `video`, its stream forwarded as it arrives).
    pub(super) fn start(
        cam: &'a Arc<Camera>,
        generation: u64,
        clock: &'a mut Timeline,
        codec: &str,
        video: Option<VideoStream>,
        base: TimeBase,
        decode_on: DecodeOn,
    ) -> Self {
        cam.set_codec(codec);
        info!(codec, "source opened");
        if let Some(v) = &video {
            cam.video().start(v.codec, v.format, &v.extradata);
        }
        clock.new_session();
        let thinner = Thinner::new(cam.config().max_fps);
        // A stream decoded on demand is decoded from the units as the feed keeps them (its
        // GOP is the camera's only one), and its decoder answers the feed's cold snapshots.
        let decoding = match video.as_ref().filter(|v| v.on_demand) {
            None => Decoding::None,
            Some(_) => {
                let d = OnDemandDecoder::new(cam.id(), cam.demand().clone());
                cam.video().set_decoder(d.seam());
                match decode_on {
                    DecodeOn::SessionThread => Decoding::Inline(d),
                    DecodeOn::Pool => Decoding::Pool(PooledDecoder::new(
                        cam.clone(),
                        generation,
                        d,
                        thinner.clone(),
                    )),
                }
            }
        };
        Self {
            decoding,
            _stop: StopVideo(cam.clone()),
            cam,
            generation,
            clock,
            base,
            units_stamped: video.is_some(),
            thinner,
            decoded: Vec::new(),
        }
    }

    /// Publishes what the source yielded; `Some` when the session is over.
    pub(super) fn event(
        &mut self,
        event: Result<SourceEvent, SessionError>,
        cancel: &CancellationToken,
    ) -> Option<Result<SessionEnd, SessionError>> {
        let cam = self.cam;
        let current = cam.is_current(self.generation);
        match event {
            Ok(SourceEvent::Picture {
                width,
                height,
                picture,
                ts,
            }) => {
                if current {
                    let now = Instant::now();
                    let pts = if self.units_stamped {
                        self.clock.map(ts).or(self.clock.head()).unwrap_or(0)
                    } else {
                        self.clock.stamp(ts, self.base, now)
                    };
                    if self.thinner.admit(now) {
                        cam.publish(width, height, picture, Stamp::now(pts));
                    }
                }
            }
            Ok(SourceEvent::Corrupt) => cam.count_corrupt(),
            Ok(SourceEvent::Video { data, ts }) => {
                if current {
                    let now = Instant::now();
                    let pts = self.clock.stamp(ts, self.base, now);
                    cam.video_unit(data, Stamp::now(pts));
                    match &mut self.decoding {
                        Decoding::None => {}
                        Decoding::Inline(d) => {
                            d.unit(cam.video(), &mut self.decoded);
                            publish_decoded(cam, &mut self.decoded, &mut self.thinner, now);
                        }
                        Decoding::Pool(p) => p.kick(),
                    }
                }
            }
            Ok(SourceEvent::Audio { data, ts }) => {
                if current {
                    // The audio's own timestamps, placed where the video's clock stands now.
                    let pts = self.clock.at(Instant::now()).unwrap_or(0);
                    cam.audio().frame(data, ts, pts);
                }
            }
            Ok(SourceEvent::Eof) => {
                if let Decoding::Inline(d) = &mut self.decoding {
                    if current {
                        d.drain(&mut self.decoded);
                        publish_decoded(cam, &mut self.decoded, &mut self.thinner, Instant::now());
                    }
                }
                return Some(Ok(SessionEnd::Eof));
            }
            Ok(SourceEvent::Cancelled) => return Some(Ok(SessionEnd::Cancelled)),
            Err(_) if cancel.is_cancelled() => return Some(Ok(SessionEnd::Cancelled)),
            Err(e) => return Some(Err(e)),
        }
        None
    }

    /// Ends the session from async code: a pooled decoder may be mid-decode, so it is let go
    /// on a blocking thread rather than waited for on an async worker.
    pub(super) async fn finish(mut self) {
        if let Decoding::Pool(p) = std::mem::replace(&mut self.decoding, Decoding::None) {
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
    }
}
