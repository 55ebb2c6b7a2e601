//! Process harness shared by the end-to-end tests and the benchmark: starts the real `camwall`
//! binary and GStreamer's RTSP test server on 127.0.0.1 with ports picked at run time, and
//! stops them by PID on drop.
//!
//! It needs only the standard library, tokio, reqwest, serde_json and tempfile, so both the test
//! crates (`mod common`) and the benchmark (`#[path]`) can include it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The log filter the tests run camwall with: enough to `wait_log` on connection events.
pub const TEST_LOG: &str = "debug,camwall::web::ws=trace,warp=info,hyper=info,retina=info";

/// A running camwall with its own config in a temporary directory.
pub struct Camwall {
    pub child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    stderr: Arc<Mutex<String>>,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The camwall binary Cargo built beside this test or benchmark (same profile).
pub fn camwall_bin() -> &'static str {
    env!("CARGO_BIN_EXE_camwall")
}

/// Writes `config` (JSON, `server.public_dir` pointed at the repository's `public/`,
/// `server.allow_local_sources` true unless given) into a
/// fresh directory; returns the directory and the file.
pub fn write_config(config: Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config;
    let public = repo_root().join("public");
    config["server"]["public_dir"] = Value::String(public.to_string_lossy().into_owned());
    // Tests add lavfi cameras through the API, which needs this (default false); a test of
    // the default removes it or sets it.
    if config["server"].get("allow_local_sources").is_none() {
        config["server"]["allow_local_sources"] = Value::Bool(true);
    }
    let config_path = dir.path().join("cameras.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    (dir, config_path)
}

/// Writes `config` and starts the test build of camwall on a free port with debug logs.
pub fn start_camwall(config: Value) -> Camwall {
    let (dir, config_path) = write_config(config);
    start_with_config_file(dir, config_path)
}

pub fn start_with_config_file(dir: tempfile::TempDir, config_path: PathBuf) -> Camwall {
    spawn_camwall(Path::new(camwall_bin()), dir, config_path, TEST_LOG)
}

/// Starts `bin` with `config_path` on 127.0.0.1 port 0 and waits (bounded) for the address it
/// prints. Its stderr is kept for `logs()`.
pub fn spawn_camwall(
    bin: &Path,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_filter: &str,
) -> Camwall {
    let (child, base, stderr) = spawn_process(bin, &config_path, log_filter);
    Camwall {
        child: Some(child),
        base,
        dir,
        config_path,
        stderr,
    }
}

/// The process of [`spawn_camwall`]: the child, its address, its stderr so far.
fn spawn_process(
    bin: &Path,
    config_path: &Path,
    log_filter: &str,
) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config_path)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("CAMWALL_LOG", log_filter)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if let Some(url) = line.trim().strip_prefix("camwall listening on ") {
                let _ = tx.send(url.to_string());
            }
            line.clear();
        }
    });
    let base = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(base) => base,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("camwall did not start; log:\n{}", log.lock().unwrap())
        }
    };
    (child, base, log)
}

impl Camwall {
    /// Stops camwall as a service manager would (SIGTERM, waiting for its graceful exit),
    /// then starts it again on the same config file and directory (on a new port).
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                assert!(std::time::Instant::now() < deadline, "camwall did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let (child, base, stderr) =
            spawn_process(Path::new(camwall_bin()), &self.config_path, TEST_LOG);
        self.child = Some(child);
        self.base = base;
        self.stderr = stderr;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until the server's log contains `needle`; logging is asynchronous to
    /// the requests and signals that cause it.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        self.wait_log_count(needle, 1, timeout).await;
    }

    /// Waits (bounded) until `needle` occurs at least `count` times in the server's log.
    pub async fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        while self.logs().matches(needle).count() < count {
            if Instant::now() > end {
                panic!(
                    "log never showed {needle:?} {count} times:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status API's answer, or `None` while the server cannot answer.
    pub async fn try_status(&self) -> Option<Value> {
        reqwest::get(self.url("/api/ip-cameras/status"))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    pub async fn status(&self) -> Value {
        reqwest::get(self.url("/api/ip-cameras/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends SIGTERM and returns how long the process took to exit, and its status.
    pub fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (t0.elapsed(), st);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("camwall did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Camwall {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `sig` to one process this test started and has not reaped. Never PID 0: `kill 0`
/// would signal the whole process group, the test runner and every test's servers with it.
pub fn signal(pid: u32, sig: &str) {
    assert!(pid > 0, "no process to send SIG{sig} to");
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port`, read from /proc so that asking does not
/// take a connection (ffmpeg's `-listen 1` serves exactly one).
pub fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
        })
}

/// A value from /proc/PID/status (`VmRSS:`, `RssAnon:`, `VmHWM:`, `Threads:`), in its unit.
pub fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// GStreamer's RTSP server (scripts/rtsp_test_server.py) at `rtsp://127.0.0.1:PORT/cam`, or
/// on /cam0.. with `--mounts`.
pub struct RtspServer {
    child: Option<Child>,
    pub port: u16,
    /// What the server printed on stderr (the first 64 KiB), shown when it died on its own.
    stderr: Arc<Mutex<String>>,
}

impl RtspServer {
    pub fn start(args: &[&str]) -> Self {
        Self::start_on(0, args)
    }

    /// A small H.264 camera (320x180, 15 fps) with a sine of `hz` on its audio track in
    /// `codec` (`aac`, `pcmu`; `None`: no audio track).
    pub fn small(audio: Option<(&str, u32)>) -> Self {
        let mut args = vec!["--size", "320x180", "--fps", "15"];
        let hz = audio.map(|(_, hz)| hz.to_string()).unwrap_or_default();
        if let Some((codec, _)) = audio {
            args.extend(["--audio", codec, "--audio-freq", &hz]);
        }
        Self::start(&args)
    }

    /// On a given port (0: any), e.g. a restart where camera URLs must stay valid.
    pub fn start_on(port: u16, args: &[&str]) -> Self {
        let script = repo_root().join("scripts/rtsp_test_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the RTSP test server (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        // Drained all along: a long run (the soak) must not block the server on a full pipe.
        let err = Arc::new(Mutex::new(String::new()));
        let sink = err.clone();
        let stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let mut s = sink.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                }
                line.clear();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut rest);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                let _ = err_reader.join();
                let err = err.lock().unwrap();
                panic!("RTSP test server did not start: {line:?} {err}")
            });
        RtspServer {
            child: Some(child),
            port,
            stderr: err,
        }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        // A server that died before the test let it go explains a camera that stopped: say so
        // in the test's output rather than leave only the camera's "connection refused".
        if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
            let err = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
            eprintln!(
                "RTSP test server on {} had exited by itself ({status}): {err}",
                self.port
            );
        }
        self.kill();
    }
}
