//! camwall: many cameras in (FFmpeg), JPEG frames out (libjpeg-turbo), served over HTTP.
//!
//! Data flows one way: `ingest` (camera workers) → `hub` (latest frame, lazy encodes, cache)
//! → `web` (routes). `app` wires them and owns shutdown.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod app;
pub mod auth;
pub mod config;
pub mod fanout;
pub mod frame;
pub mod hub;
pub mod ingest;
pub mod jpeg;
pub mod logging;
pub mod manage;
pub mod metrics;
pub mod redact;
pub mod server;
pub mod web;
pub mod ws;

/// Initializes FFmpeg once and keeps its own log quiet, since its lines may repeat a camera URL
/// with credentials; camwall reports errors itself. Devices (lavfi, V4L2) are loaded on first
/// use (`ingest::devices`).
pub fn init_ffmpeg() -> Result<(), ffmpeg_next::Error> {
    ffmpeg_next::init()?;
    let level = match std::env::var("CAMWALL_FFMPEG_LOG").as_deref() {
        Ok("debug") => ffmpeg_next::util::log::Level::Debug,
        Ok("info") => ffmpeg_next::util::log::Level::Info,
        Ok("warning") => ffmpeg_next::util::log::Level::Warning,
        Ok("error") => ffmpeg_next::util::log::Level::Error,
        _ => ffmpeg_next::util::log::Level::Fatal,
    };
    ffmpeg_next::util::log::set_level(level);
    Ok(())
}
