//! Ingest: opening camera sources with FFmpeg and the per-camera worker that keeps them running.
//!
//! Ingest only publishes into the hub's `Camera` (frames and status); it never reads outputs,
//! web routes or clients.

pub mod backoff;
mod decoder;
pub mod devices;
pub mod diagnose;
pub mod ffmpeg_source;
mod on_demand;
pub mod probe;
pub mod source;
mod timing;
pub mod worker;

#[cfg(test)]
mod tests;
