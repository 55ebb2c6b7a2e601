//! Control: supervising the camera workers and applying configuration changes (API calls,
//! SIGHUP reloads) to the hub and the config file. Never serves a client or touches a frame.

pub mod manager;

pub use manager::{CameraView, ChangeError, Manager};
