//! What the benchmark reads about processes and the machine: CPU ticks from /proc, open
//! descriptors, the CPU model; and the small statistics helpers its rows use.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v[i.min(v.len() - 1)]
}

/// CPU ticks (user + system, 1/100 s) of a process.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat"))
}

/// CPU ticks of the calling thread.
pub fn thread_cpu_ticks() -> u64 {
    stat_ticks("/proc/thread-self/stat")
}

/// CPU ticks (user + system) in a `/proc/.../stat` file: a process's or a thread's.
pub fn stat_ticks(path: &str) -> u64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Measures a process's CPU (% of one core) over a window.
pub struct CpuWindow {
    pid: u32,
    t0: Instant,
    ticks0: u64,
}

impl CpuWindow {
    pub fn start(pid: u32) -> Self {
        Self {
            pid,
            t0: Instant::now(),
            ticks0: cpu_ticks(pid),
        }
    }

    pub fn percent(&self) -> f64 {
        (cpu_ticks(self.pid) - self.ticks0) as f64 / self.t0.elapsed().as_secs_f64()
    }
}

pub fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {model}")
}
