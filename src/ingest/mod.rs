//! Ingest: opening camera sources (RTSP with retina, everything else with FFmpeg), the
//! per-camera worker that keeps them running, and the pool that decodes on demand.
//!
//! Ingest only publishes into the hub's `Camera` (frames and status); it never reads outputs,
//! web routes or clients.

pub mod backoff;
mod decode_pool;
mod decoder;
pub mod devices;
pub mod diagnose;
mod ffmpeg_audio;
pub mod ffmpeg_source;
mod on_demand;
pub mod opener;
pub mod probe;
mod rtsp;
pub mod seam;
mod session;
pub mod source;
mod timing;
pub mod worker;

#[cfg(test)]
mod tests;
