//! camwall: many cameras in (FFmpeg), JPEG frames out (libjpeg-turbo), served over HTTP.
//!
//! Data flows one way: `ingest` (camera workers) → `hub` (cameras: status, newest frame, tier
//! cache, live lanes) → `web` (routes and clients). `media` holds the pure picture rules,
//! `control` supervises workers and applies config changes, `access` decides who may come in,
//! `replay` keeps every camera's last minutes on disk (an output of the hub beside `web`),
//! `obs` observes. `app` wires them and owns shutdown. docs/ARCHITECTURE.md draws it.
//!
//! The public surface is what the binary and the benchmark use: `app`, `config`, `control`
//! (the config store), `media` (frames and JPEG, for the benchmark's floor) and `obs`; the rest
//! is internal to the crate.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub(crate) mod access;
pub mod app;
pub(crate) mod cluster;
pub mod config;
pub mod control;
pub(crate) mod hub;
pub(crate) mod ingest;
pub(crate) mod link;
pub mod media;
pub mod obs;
pub(crate) mod replay;
pub(crate) mod web;

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
