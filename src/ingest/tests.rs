//! The worker's session and backoff loop driven by a scripted source on paused tokio time: no
//! FFmpeg, no real sleeps.
//!
//! Sessions still run on their own threads, so the helpers below wait for them by yielding
//! (tokio's clock stands still while the test keeps the runtime busy) and move time only with
//! `tokio::time::advance`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::{BACKOFF_INITIAL, STABLE_AFTER};
use super::worker::{run, Opener, SessionError, Source, SourceEvent};
use crate::config::CameraConfig;
use crate::hub::{Camera, CameraState, CameraStatus, HubSettings};
use crate::media::frame::Picture;

/// One step of an opened scripted source.
enum Step {
    /// This many pictures.
    Frames(u32),
    /// Blocks the session until the test sends on (or drops) the gate's sender.
    Hold(mpsc::Receiver<()>),
    Fail(SessionError),
    Eof,
    Panic,
}

/// What one call of `open` does.
enum Session {
    OpenFails(SessionError),
    Opens(Vec<Step>),
}

/// An opener that plays one scripted session per call and counts the calls.
struct Script {
    sessions: Mutex<VecDeque<Session>>,
    opens: AtomicUsize,
}

impl Opener for Script {
    fn open(
        &self,
        _config: &CameraConfig,
        _cancel: &CancellationToken,
    ) -> Result<Box<dyn Source>, SessionError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let next = self.sessions.lock().expect("script lock").pop_front();
        match next {
            Some(Session::OpenFails(e)) => Err(e),
            Some(Session::Opens(steps)) => Ok(Box::new(Scripted {
                steps: steps.into(),
                sent: 0,
            })),
            None => Err(SessionError::Decoder("the script ran out".to_string())),
        }
    }
}

struct Scripted {
    steps: VecDeque<Step>,
    /// Pictures handed out so far in this session.
    sent: i64,
}

impl Source for Scripted {
    fn codec(&self) -> &str {
        "mjpeg"
    }

    fn next_event(&mut self) -> Result<SourceEvent, SessionError> {
        loop {
            match self.steps.pop_front() {
                None | Some(Step::Eof) => return Ok(SourceEvent::Eof),
                Some(Step::Frames(0)) => {}
                Some(Step::Frames(n)) => {
                    self.steps.push_front(Step::Frames(n - 1));
                    self.sent += 1;
                    return Ok(SourceEvent::Picture {
                        width: 64,
                        height: 48,
                        picture: Picture::Jpeg {
                            data: bytes::Bytes::from_static(b"not decoded here"),
                            quality: Some(80),
                        },
                        // Stamped 40 ms apart in microseconds, however fast they come.
                        ts: Some(self.sent * 40_000),
                    });
                }
                Some(Step::Hold(gate)) => {
                    let _ = gate.recv();
                }
                Some(Step::Fail(e)) => return Err(e),
                Some(Step::Panic) => panic!("scripted panic"),
            }
        }
    }
}

fn stalled() -> SessionError {
    SessionError::Stalled(Duration::from_secs(5))
}

fn gate() -> (mpsc::Sender<()>, Step) {
    let (tx, rx) = mpsc::channel();
    (tx, Step::Hold(rx))
}

/// A camera with its worker running on a script.
struct Rig {
    cam: Arc<Camera>,
    script: Arc<Script>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Rig {
    fn start(sessions: Vec<Session>) -> Self {
        Self::start_as(sessions, false)
    }

    /// `on_demand`: the worker of a stream that connects only while used (a sub stream).
    fn start_as(sessions: Vec<Session>, on_demand: bool) -> Self {
        let config: CameraConfig = serde_json::from_value(serde_json::json!({
            "id": "cam",
            "url": "rtsp://user:secret@cam.example/stream",
        }))
        .expect("test config");
        let settings = HubSettings {
            frame_cache_ttl: Duration::from_millis(100),
            qualities: crate::media::tier::Qualities::new(&[85]),
            max_cached_tiers: 4,
            remote: Default::default(),
        };
        let cam = Arc::new(Camera::new(config, &settings, 1));
        let generation = cam.next_generation();
        let script = Arc::new(Script {
            sessions: Mutex::new(sessions.into()),
            opens: AtomicUsize::new(0),
        });
        let cancel = CancellationToken::new();
        let task = if on_demand {
            let worker = super::worker::run_on_demand(
                cam.clone(),
                script.clone(),
                cancel.clone(),
                generation,
            );
            tokio::spawn(worker)
        } else {
            tokio::spawn(run(cam.clone(), script.clone(), cancel.clone(), generation))
        };
        Self {
            cam,
            script,
            cancel,
            task,
        }
    }

    fn opens(&self) -> usize {
        self.script.opens.load(Ordering::SeqCst)
    }

    /// Lets the worker and its session thread run, with tokio's clock standing still, until
    /// `cond` holds. Panics after 10 s of real time.
    async fn until(&self, what: &str, cond: impl Fn(&CameraStatus, usize) -> bool) -> CameraStatus {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.cam.status();
            if cond(&s, self.opens()) {
                return s;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "waiting for {what}: opens {}, {s:?}",
                self.opens()
            );
            tokio::task::yield_now().await;
        }
    }

    /// Waits until the worker is back in a backoff after its `reconnects`-th failure.
    async fn failed(&self, reconnects: u64) -> CameraStatus {
        self.until("a backoff", |s, _| {
            s.reconnects == reconnects
                && matches!(s.state, CameraState::Backoff | CameraState::Unauthorized)
        })
        .await
    }

    /// Moves tokio's clock in 10 ms steps until the worker opens its source for the
    /// `opens`-th time; returns the time that took.
    async fn advance_until_open(&self, opens: usize) -> Duration {
        let t0 = Instant::now();
        while self.opens() < opens {
            assert!(t0.elapsed() < Duration::from_secs(120), "no open #{opens}");
            tokio::time::advance(Duration::from_millis(10)).await;
            // A worker whose sleep ended spawns its session thread when next polled.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            if self.cam.state() == CameraState::Connecting {
                self.until("the open", |_, n| n >= opens).await;
            }
        }
        t0.elapsed()
    }

    /// Cancels the worker and waits for it to end.
    async fn stop(self) -> CameraStatus {
        self.cancel.cancel();
        self.finished().await
    }

    async fn finished(self) -> CameraStatus {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while !self.task.is_finished() {
            assert!(
                std::time::Instant::now() < give_up,
                "the worker did not end"
            );
            tokio::task::yield_now().await;
        }
        self.task.await.expect("the worker panicked");
        self.cam.status()
    }
}

/// `retry_in_ms` right after a failure, against the backoff's ±20 % jitter around `base`
/// (with room for the real milliseconds the hub's clock saw pass).
fn assert_retry_in(s: &CameraStatus, base: Duration) {
    let ms = s.retry_in_ms.expect("retry_in_ms in a backoff");
    let (lo, hi) = (base.mul_f64(0.8), base.mul_f64(1.2));
    assert!(
        ms + 100 >= lo.as_millis() as u64 && ms <= hi.as_millis() as u64,
        "retry_in_ms {ms} outside {lo:?}..{hi:?}"
    );
}

fn assert_waited(waited: Duration, base: Duration) {
    let (lo, hi) = (
        base.mul_f64(0.8),
        base.mul_f64(1.2) + Duration::from_millis(20),
    );
    assert!(
        waited >= lo && waited <= hi,
        "waited {waited:?} outside {lo:?}..{hi:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_longer_each_time_and_count_as_reconnects() {
    let rig = Rig::start(vec![
        Session::OpenFails(stalled()),
        Session::OpenFails(stalled()),
        Session::OpenFails(stalled()),
    ]);
    let mut base = BACKOFF_INITIAL;
    for n in 1..=3 {
        let s = rig.failed(n).await;
        assert_eq!(s.state, CameraState::Backoff);
        assert_eq!(s.last_error.as_deref(), Some("stalled: no packet for 5s"));
        assert_retry_in(&s, base);
        let waited = rig.advance_until_open(n as usize + 1).await;
        assert_waited(waited, base);
        base *= 2;
    }
    assert_eq!(rig.stop().await.state, CameraState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_stable_session_resets_the_backoff_and_a_short_one_does_not() {
    let (open_gate, held_open) = gate();
    let (stream_gate, held_streaming) = gate();
    let rig = Rig::start(vec![
        Session::OpenFails(stalled()),
        Session::OpenFails(stalled()),
        Session::OpenFails(stalled()),
        Session::Opens(vec![
            held_open,
            Step::Frames(1),
            held_streaming,
            Step::Fail(stalled()),
        ]),
        Session::Opens(vec![Step::Frames(1), Step::Fail(stalled())]),
    ]);
    for n in 1..=3 {
        rig.failed(n).await;
        rig.advance_until_open(n as usize + 1).await;
    }
    // Opened, no picture yet: still connecting.
    let s = rig
        .until("the open", |s, n| n == 4 && s.codec.is_some())
        .await;
    assert_eq!(s.state, CameraState::Connecting);
    assert_eq!(s.retry_in_ms, None);
    open_gate.send(()).expect("session alive");
    let s = rig
        .until("streaming", |s, _| s.state == CameraState::Streaming)
        .await;
    assert_eq!(s.frames_in, 1);
    tokio::time::advance(STABLE_AFTER + Duration::from_secs(1)).await;
    stream_gate.send(()).expect("session alive");
    // Three failures would make the next delay 4 s; a stable session starts again at 0.5 s.
    let s = rig.failed(4).await;
    assert_retry_in(&s, BACKOFF_INITIAL);
    assert_waited(rig.advance_until_open(5).await, BACKOFF_INITIAL);
    // A short session, even with frames, does not reset: the schedule goes on.
    let s = rig.failed(5).await;
    assert_eq!(s.frames_in, 2);
    assert_retry_in(&s, BACKOFF_INITIAL * 2);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unauthorized_has_its_own_state_and_a_slower_backoff() {
    let rig = Rig::start(vec![
        Session::OpenFails(SessionError::Unauthorized),
        Session::OpenFails(stalled()),
    ]);
    let s = rig.failed(1).await;
    assert_eq!(s.state, CameraState::Unauthorized);
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("refused the credentials"), "{error}");
    assert_retry_in(&s, BACKOFF_INITIAL * 4);
    assert_waited(rig.advance_until_open(2).await, BACKOFF_INITIAL * 4);
    // The next ordinary failure is an ordinary backoff again (second step: 1 s).
    let s = rig.failed(2).await;
    assert_eq!(s.state, CameraState::Backoff);
    assert_retry_in(&s, BACKOFF_INITIAL * 2);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_kick_cuts_the_backoff_short() {
    let (gate, held) = gate();
    let rig = Rig::start(vec![
        Session::OpenFails(SessionError::Unauthorized),
        Session::Opens(vec![held]),
    ]);
    rig.failed(1).await;
    let t0 = Instant::now();
    rig.cam.kick();
    let s = rig.until("the second open", |_, n| n == 2).await;
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "the kick waited for the clock"
    );
    assert_eq!(s.reconnects, 1);
    let s = rig.until("connecting", |s, _| s.codec.is_some()).await;
    assert_eq!(s.state, CameraState::Connecting);
    drop(gate);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unused_on_demand_stream_opens_the_moment_it_is_used() {
    let (gate, held) = gate();
    let rig = Rig::start_as(vec![Session::Opens(vec![held])], true);
    rig.until("idle", |s, _| s.state == CameraState::Idle).await;
    // Nobody uses it: however long, it stays closed.
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert_eq!(rig.opens(), 0);
    // A user comes: it opens without waiting for the clock.
    let t0 = Instant::now();
    let _user = rig.cam.demand().use_stream();
    rig.until("the open", |_, n| n == 1).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "the open waited for a poll");
    drop(gate);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_backoff_and_leaves_the_camera_stopped() {
    let rig = Rig::start(vec![Session::OpenFails(stalled())]);
    rig.failed(1).await;
    let opens = rig.opens();
    let s = rig.stop().await;
    assert_eq!(s.state, CameraState::Stopped);
    assert_eq!(opens, 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_a_session_is_no_failure() {
    let (gate, held) = gate();
    let rig = Rig::start(vec![Session::Opens(vec![
        Step::Frames(1),
        held,
        // What an interrupted FFmpeg read returns.
        Step::Fail(SessionError::Read(ffmpeg_next::Error::Exit)),
    ])]);
    rig.until("a frame", |s, _| s.frames_in == 1).await;
    rig.cancel.cancel();
    gate.send(()).expect("session alive");
    let s = rig.finished().await;
    assert_eq!(s.state, CameraState::Stopped);
    assert_eq!(s.reconnects, 0);
    assert_eq!(s.last_error, None);
}

#[tokio::test(start_paused = true)]
async fn pictures_keep_the_source_clock_and_a_new_session_goes_on_from_it() {
    let (gate_a, held_a) = gate();
    let (gate_b, held_b) = gate();
    let rig = Rig::start(vec![
        Session::Opens(vec![
            Step::Frames(1),
            held_a,
            Step::Frames(1),
            Step::Fail(stalled()),
        ]),
        // The next session's stamps start again where the first one's did.
        Session::Opens(vec![Step::Frames(1), held_b]),
    ]);
    let pts = |rig: &Rig| rig.cam.latest().expect("a frame").stamp.pts_us;
    // The counters move before the picture is the latest one (the worker publishes from its
    // own thread): wait for the picture itself.
    let published = |rig: &Rig, seq: u64| rig.cam.latest().is_some_and(|f| f.seq == seq);
    rig.until("a frame", |s, _| s.frames_in == 1 && published(&rig, 1))
        .await;
    let first = pts(&rig);
    gate_a.send(()).expect("session alive");
    rig.until("two frames", |s, _| s.frames_in == 2 && published(&rig, 2))
        .await;
    let second = pts(&rig);
    assert_eq!(
        second - first,
        40_000,
        "the source's 40 ms, not its arrival"
    );
    rig.failed(1).await;
    rig.advance_until_open(2).await;
    rig.until("a third frame", |s, _| {
        s.frames_in == 3 && published(&rig, 3)
    })
    .await;
    let third = pts(&rig);
    assert!(third > second, "{third} after {second}: never a step back");
    drop(gate_b);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_replaced_worker_stops_publishing_and_leaves_the_state_alone() {
    let (gate, held) = gate();
    let rig = Rig::start(vec![Session::Opens(vec![
        Step::Frames(2),
        held,
        Step::Frames(3),
        Step::Fail(stalled()),
    ])]);
    rig.until("two frames", |s, _| s.frames_in == 2).await;
    rig.cam.next_generation();
    gate.send(()).expect("session alive");
    // The old worker ends by itself: no cancel.
    let s = rig.finished().await;
    assert_eq!(s.frames_in, 2);
    assert_eq!(s.reconnects, 0);
    assert_eq!(s.state, CameraState::Streaming);
}

#[tokio::test(start_paused = true)]
async fn a_replaced_and_cancelled_worker_does_not_mark_the_camera_stopped() {
    let (gate, held) = gate();
    let rig = Rig::start(vec![Session::Opens(vec![Step::Frames(1), held])]);
    rig.until("streaming", |s, _| s.state == CameraState::Streaming)
        .await;
    // What the manager does on a reconfiguration: a new generation, the old token cancelled.
    rig.cam.next_generation();
    rig.cancel.cancel();
    drop(gate);
    let s = rig.finished().await;
    assert_eq!(
        s.state,
        CameraState::Streaming,
        "the successor owns the state"
    );
}

#[tokio::test(start_paused = true)]
async fn a_source_that_ends_is_played_again_unless_it_had_no_frame() {
    let (gate, held) = gate();
    let rig = Rig::start(vec![
        Session::Opens(vec![Step::Frames(2), Step::Eof]),
        Session::Opens(vec![Step::Eof]),
        Session::Opens(vec![held]),
    ]);
    rig.until("the first play", |s, n| n == 1 && s.frames_in == 2)
        .await;
    // Replayed after the shortest loop, as no failure.
    let waited = rig.advance_until_open(2).await;
    assert!(
        waited >= Duration::from_millis(200) && waited <= Duration::from_millis(220),
        "replayed after {waited:?}"
    );
    let s = rig.failed(1).await;
    assert_eq!(s.frames_in, 2);
    assert_eq!(
        s.last_error.as_deref(),
        Some("the source ended before its first frame")
    );
    assert_retry_in(&s, BACKOFF_INITIAL);
    rig.advance_until_open(3).await;
    drop(gate);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_session_is_a_failure_not_the_end() {
    let rig = Rig::start(vec![Session::Opens(vec![Step::Frames(1), Step::Panic])]);
    let s = rig.failed(1).await;
    assert_eq!(s.last_error.as_deref(), Some("the session thread panicked"));
    assert_eq!(s.state, CameraState::Backoff);
    rig.advance_until_open(2).await;
    assert_eq!(rig.stop().await.state, CameraState::Stopped);
}
