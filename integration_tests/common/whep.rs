//! The third-party WHEP player of the WebRTC tests: `integration_tests/whep_client.py` on
//! aiortc (PyPI), run from the venv `scripts/whep-venv` makes, its JSON lines read back.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::repo_root;

/// The venv's Python; `scripts/test` makes it (`scripts/whep-venv`).
pub fn whep_python() -> PathBuf {
    let p = repo_root().join("target/whep-venv/bin/python");
    assert!(
        p.exists(),
        "no WHEP player: run scripts/whep-venv (aiortc from PyPI in target/whep-venv)"
    );
    p
}

/// A running WHEP player; its events as they come.
pub struct Player {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Player {
    /// Starts the player on `url` (the camera's WHEP endpoint) with `args`.
    pub fn start(url: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(whep_python())
            .arg(repo_root().join("integration_tests/whep_client.py"))
            .arg(url)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the WHEP player");
        let out = child.stdout.take().expect("stdout");
        Self {
            child,
            lines: BufReader::new(out).lines(),
        }
    }

    /// The next event, within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .ok()?
            .ok()??;
        serde_json::from_str(&line).ok()
    }

    /// Events until one named `event` (it included), within `timeout` in all.
    pub async fn until(&mut self, event: &str, timeout: Duration) -> Vec<Value> {
        let end = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let Some(v) = self.next(left).await else {
                panic!("the WHEP player never said {event:?}; it said {out:?}")
            };
            let done = v["event"] == event;
            out.push(v);
            if done {
                return out;
            }
        }
    }

    /// Waits for the player to exit (bounded).
    pub async fn wait(mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.child.wait()).await;
    }
}

/// Runs the player to its end and returns every event.
pub async fn play(url: &str, args: &[&str], timeout: Duration) -> Vec<Value> {
    let mut p = Player::start(url, args);
    let mut out = Vec::new();
    while let Some(v) = p.next(timeout).await {
        out.push(v);
    }
    p.wait(Duration::from_secs(5)).await;
    out
}

/// The one event named `event`.
pub fn event<'a>(events: &'a [Value], event: &str) -> &'a Value {
    events
        .iter()
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("no {event:?} event in {events:?}"))
}

/// What the player heard (`--audio-out`), its first channel only, for a `done` event that
/// says how many channels it had.
pub fn heard(path: &std::path::Path, done: &Value) -> Vec<i16> {
    let channels = done["audio_channels"].as_u64().unwrap_or(1).max(1) as usize;
    std::fs::read(path)
        .unwrap_or_default()
        .chunks_exact(2 * channels)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}
