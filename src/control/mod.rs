//! Runtime control of the camera set: the manager that supervises camera workers and applies
//! changes (API calls, SIGHUP reloads) to the hub, the camera list it stores them in (the
//! config file alone, the cluster's shared catalog in a cluster), and the store that owns the
//! config file.
//!
//! Nothing here serves HTTP or touches frames: `web` maps these results to responses, and
//! `hub` and `camera` do the streaming. Nothing here may write the config file except through
//! the store, which refuses to overwrite an edit made by hand.

mod manager;
mod store;

pub use manager::{
    parse_camera, parse_view, short_name, BoxFuture, CameraList, CameraView, ChangeError, Manager,
    ReloadError, UserList,
};
pub use store::{write_atomic, ConfigStore, StoreError};
