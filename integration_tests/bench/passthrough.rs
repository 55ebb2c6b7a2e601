//! The passthrough floor: what reading the cameras' RTSP streams costs with no decode at all
//! (`ffmpeg -c copy -f null`, one process per camera), the least any server forwarding the
//! cameras' own video could spend. Starts and stops only its own ffmpeg processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procfs::cpu_ticks;

/// The ffmpeg readers, killed (by their own handles) when dropped, whatever happens.
struct Readers(Vec<Child>);

impl Drop for Readers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ticks(r: &Readers) -> u64 {
    r.0.iter().map(|c| cpu_ticks(c.id())).sum()
}

/// Reads `urls` with one `ffmpeg -c copy -f null` each for `secs` after a warm-up; the row
/// holds their CPU (% of one core, all together) and how many were still reading at the end.
pub async fn passthrough_floor(urls: &[String], secs: u64) -> Value {
    let mut readers = Readers(Vec::new());
    for url in urls {
        let child = Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
            ])
            .arg(url)
            .args(["-c", "copy", "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => readers.0.push(c),
            Err(e) => return json!({"id": "PASSTHROUGH", "error": format!("starting ffmpeg: {e}")}),
        }
    }
    // Warm-up: every reader connected and past probing, as camwall's cameras are when a
    // window starts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = Instant::now();
    let ticks0 = ticks(&readers);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let ticks1 = ticks(&readers);
    let elapsed = t0.elapsed().as_secs_f64();
    let mut alive = 0;
    for c in &mut readers.0 {
        if matches!(c.try_wait(), Ok(None)) {
            alive += 1;
        }
    }
    json!({
        "id": "PASSTHROUGH",
        "setup": format!("{} RTSP streams read with ffmpeg -rtsp_transport tcp -c copy -f null, one process each", urls.len()),
        "cameras": urls.len(),
        "readers_alive": alive,
        "cpu_percent": ticks1.saturating_sub(ticks0) as f64 / elapsed,
    })
}
