//! Camera ingest: opening sources with FFmpeg and the per-camera worker that keeps them running.

pub mod devices;
pub mod source;
pub mod worker;
