//! `GET /ws`: the upgrade (origin check, client caps) and the connection loop that moves bytes
//! between the socket and the sans-I/O [`Session`]: a reader task for client messages and
//! pongs, and a writer loop that sends the session's output, pings, and drops dead clients.
//!
//! A receiver that lags skips to the newest frame, so a client never has more than one frame
//! pending per camera and a slow client never holds up the lanes or other clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, Instrument};
use warp::ws::{Message, WebSocket};

use super::protocol::{ProtocolError, MAX_WS_MESSAGE};
use super::session::{Incoming, Out, Session, TICK};
use crate::access::guard::Principal;
use crate::access::limits::{ClientKind, ClientSlot};
use crate::hub::Hub;
use crate::obs::metrics;
use crate::web::server::{SocketFd, UnsentLimit};

/// A ping goes out this often; a client silent for [`DEAD_AFTER`] is dropped.
pub const PING_EVERY: Duration = Duration::from_secs(10);
pub const DEAD_AFTER: Duration = Duration::from_secs(30);
/// A single send blocked this long means the client is gone.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounded queue from the reader task to the writer.
const CONTROL_QUEUE: usize = 32;

/// Upgrades to the live wall's WebSocket; `slot` is the client's place under the caps.
pub fn upgrade(
    ws: warp::ws::Ws,
    fd: Option<SocketFd>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    slot: ClientSlot,
    who: Principal,
    replay: Option<Arc<crate::replay::Replay>>,
) -> warp::reply::Response {
    use warp::Reply;
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| async move {
            // The socket's descriptor is used only inside `serve`, which holds the socket.
            serve(socket, fd.map(UnsentLimit::new), hub, shutdown, who, replay).await;
            drop(slot);
        })
        .into_response()
}

/// How long audio frames wait to be written: those of every camera the client listens to go
/// out together with the next picture, or on their own after this (one write instead of one
/// per frame; the page plays sound 150 ms behind the newest frame anyway).
const AUDIO_FLUSH: Duration = Duration::from_millis(20);

/// Queues one message without writing it; `false` if the client is gone or stalled past
/// [`SEND_TIMEOUT`].
async fn feed_timed(tx: &mut SplitSink<WebSocket, Message>, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.feed(msg)).await,
        Ok(Ok(()))
    )
}

/// Sends one message; `None` if the client is gone or stalled past [`SEND_TIMEOUT`].
async fn send_timed(tx: &mut SplitSink<WebSocket, Message>, msg: Message) -> Option<Duration> {
    let t0 = Instant::now();
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(msg)).await {
        Ok(Ok(())) => Some(t0.elapsed()),
        _ => None,
    }
}

fn message(o: Out) -> Message {
    match o {
        Out::Text(t) => Message::text(t),
        Out::Binary(b) => Message::binary(b),
    }
}

/// Serves one WebSocket connection until it closes, dies, or the server shuts down.
async fn serve(
    socket: WebSocket,
    mut unsent: Option<UnsentLimit>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    who: Principal,
    replay: Option<Arc<crate::replay::Replay>>,
) {
    let peer = who.peer.map(|p| p.to_string()).unwrap_or_default();
    let span = info_span!("ws", %peer);
    async move {
        debug!("connected");
        let mut events = hub.events();
        let (mut tx, mut rx) = socket.split();
        let epoch = Instant::now();
        let last_heard = Arc::new(AtomicU64::new(0));
        // Each client message carries when it arrived, so that an acknowledgement's round
        // trip does not include time it waited here behind a frame being sent.
        let (cmd_tx, mut cmd_rx) =
            mpsc::channel::<(Instant, Result<String, ProtocolError>)>(CONTROL_QUEUE);
        let heard = last_heard.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                let item = if msg.is_text() {
                    Ok(msg.to_str().unwrap_or_default().to_string())
                } else if msg.is_binary() {
                    Err(ProtocolError::Binary)
                } else if msg.is_close() {
                    break;
                } else {
                    continue;
                };
                if cmd_tx.send((Instant::now(), item)).await.is_err() {
                    break;
                }
            }
        });

        // A user's socket ends with their session (logout, expiry, a changed or removed user).
        let asker = who.clone();
        let mut session = Session::new(hub, who, Instant::now());
        session.set_replay(replay);
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ping = Instant::now();
        let mut events_open = true;
        // When audio queued by `feed_timed` must be written at the latest.
        let mut audio_flush: Option<Instant> = None;
        'conn: loop {
            // Control answers first; they are small and bounded by the client's own messages.
            for o in session.take_output() {
                if send_timed(&mut tx, message(o)).await.is_none() {
                    break 'conn;
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = tx.send(Message::close_with(1001u16, "server shutting down")).await;
                    break;
                }
                ev = events.recv(), if events_open => {
                    events_open = !matches!(ev, Err(tokio::sync::broadcast::error::RecvError::Closed));
                    session.on_event(ev);
                }
                cmd = cmd_rx.recv() => match cmd {
                    None => break,
                    Some((at, Ok(text))) => session.on_text(&text, at).await,
                    Some((_, Err(e))) => session.refuse(e),
                },
                _ = tokio::time::sleep_until(audio_flush.unwrap_or(epoch)), if audio_flush.is_some() => {
                    audio_flush = None;
                    if !matches!(tokio::time::timeout(SEND_TIMEOUT, tx.flush()).await, Ok(Ok(()))) {
                        break;
                    }
                }
                _ = ticker.tick() => {
                    let now = Instant::now();
                    session.on_tick(now);
                    if let (Some(u), Some(bytes)) = (unsent.as_mut(), session.unsent_bytes()) {
                        u.set(bytes);
                    }
                    if now.saturating_duration_since(last_ping) >= PING_EVERY {
                        last_ping = now;
                        if !asker.still_valid() {
                            debug!("session ended; closing");
                            let _ = tx.send(Message::close_with(1008u16, "session ended")).await;
                            break;
                        }
                        let silent = epoch.elapsed().saturating_sub(Duration::from_millis(last_heard.load(Ordering::Relaxed)));
                        if silent > DEAD_AFTER {
                            debug!("no answer to pings; dropping");
                            break;
                        }
                        if send_timed(&mut tx, Message::ping(Vec::new())).await.is_none() {
                            break;
                        }
                    }
                }
                Some(incoming) = session.next_frame() => match incoming {
                    Incoming::Jpeg(id, Ok(p)) => {
                        if let Some(bytes) = session.admit(&id, &p) {
                            let n = bytes.len();
                            let started = Instant::now();
                            let Some(took) = send_timed(&mut tx, Message::binary(bytes)).await else { break };
                            metrics::frame_sent(ClientKind::WebSocket.label(), n);
                            session.sent(&id, p.encoded.seq, n, started, took);
                        }
                    }
                    Incoming::Video(id, Ok(unit)) => {
                        for o in session.admit_video(&id, &unit) {
                            let started = Instant::now();
                            let binary = matches!(o, Out::Binary(_));
                            let n = match &o { Out::Binary(b) => b.len(), Out::Text(t) => t.len() };
                            let Some(took) = send_timed(&mut tx, message(o)).await else { break 'conn };
                            if binary {
                                metrics::frame_sent(ClientKind::WebSocket.label(), n);
                                session.sent(&id, unit.seq, n, started, took);
                            }
                        }
                    }
                    Incoming::Audio(id, Ok(frame)) => {
                        for o in session.admit_audio(&id, &frame) {
                            let audio = matches!(o, Out::Binary(_));
                            if !feed_timed(&mut tx, message(o)).await { break 'conn }
                            if audio {
                                metrics::audio_frames_sent(ClientKind::WebSocket.label(), 1);
                            }
                        }
                        audio_flush.get_or_insert(Instant::now() + AUDIO_FLUSH);
                    }
                    Incoming::Replay(id, unit) => {
                        for o in session.admit_replay(&id, unit.as_ref()) {
                            if send_timed(&mut tx, message(o)).await.is_none() { break 'conn }
                        }
                    }
                    // Missed audio is a gap the page's player fills; it goes on with the newest.
                    Incoming::Audio(_, Err(BroadcastStreamRecvError::Lagged(n))) => {
                        metrics::audio_frames_skipped(ClientKind::WebSocket.label(), n);
                    }
                    Incoming::Jpeg(id, Err(BroadcastStreamRecvError::Lagged(n))) => {
                        metrics::frames_skipped(ClientKind::WebSocket.label(), n);
                        session.skipped(&id, n);
                    }
                    Incoming::Video(id, Err(BroadcastStreamRecvError::Lagged(n))) => {
                        metrics::frames_skipped(ClientKind::WebSocket.label(), n);
                        session.video_lagged(&id, n);
                    }
                },
            }
        }
        reader.abort();
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// `GET /ws` after the access guard (token, origin): refuses clients over the caps, else
/// upgrades.
pub fn handle(
    who: Principal,
    ws: warp::ws::Ws,
    fd: Option<SocketFd>,
    s: crate::web::state::WebState,
) -> warp::reply::Response {
    use crate::web::error::ApiError;
    let slot = match who.admit(ClientKind::WebSocket) {
        Ok(slot) => slot,
        Err(refused) => return ApiError::from(refused).into_response(),
    };
    upgrade(ws, fd, s.hub, s.shutdown, slot, who, s.replay)
}
