//! The camera list (and, in a cluster, the user list): where the manager stores changes. One trait for the config file
//! (alone, the default: `manager::file`) and the cluster's shared catalog
//! (`cluster::catalog`), so that the manager's add, replace, patch, remove and list paths are
//! the same in both modes and a third kind of storage needs no new branch in them.
//!
//! The split: the manager checks a change (the body, secrets sent back as shown, local
//! sources, whether the camera exists) and applies it to the hub; the list only stores it and
//! refuses what its storage refuses (a hand-edited file: `ChangedOnDisk`; a stale revision:
//! `Conflict`; an unreachable catalog: `Unavailable`). The manager applies a change only once
//! the list has taken it, so a refused write changes nothing.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::{ChangeError, ReloadError};
use crate::config::auth::UserConfig;
use crate::config::{CameraConfig, LoadedConfig};

/// A boxed future, so the trait stays object-safe (the manager holds `Arc<dyn CameraList>`)
/// without an extra crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The stored list of cameras. The manager calls it with its change lock held, so an
/// implementation sees one change at a time from its own node.
pub trait CameraList: Send + Sync {
    /// Camera `id`'s revision: what the API gives as `revision` and `ETag`, and a change sends
    /// back as `If-Match`. `None` where the list keeps no revisions (the file, where a hand
    /// edit is caught by the file's content instead) or does not hold `id`.
    fn revision(&self, id: &str) -> Option<u64>;

    /// The JSON object a merge patch (`PATCH`) of camera `current` applies to: the camera as
    /// this list stores it, so that fields the patch leaves alone are written back unchanged.
    fn stored(&self, current: &CameraConfig) -> BoxFuture<'_, Result<Value, ChangeError>>;

    /// Stores new camera `id` as `body` (already checked); returns its revision, if any.
    fn add(&self, id: &str, body: Value) -> BoxFuture<'_, Result<Option<u64>, ChangeError>>;

    /// Stores `body` (already checked) as camera `id`'s whole configuration. `base` is the
    /// revision the change is based on: a list with revisions refuses a stale one
    /// (`Conflict`) and a camera it holds no revision of (`NotFound`). Returns the new revision.
    fn replace(
        &self,
        id: &str,
        body: Value,
        base: Option<u64>,
    ) -> BoxFuture<'_, Result<Option<u64>, ChangeError>>;

    /// Removes camera `id`, by the same rule for `base` as [`CameraList::replace`].
    fn remove(&self, id: &str, base: Option<u64>) -> BoxFuture<'_, Result<(), ChangeError>>;

    /// Reads the whole configuration again from its source and takes it as what the list
    /// holds (SIGHUP); the manager then applies its cameras. A list that is not read from the
    /// config file refuses (`ReloadError::Clustered`): its cameras change through the API.
    fn reload(&self) -> BoxFuture<'_, Result<LoadedConfig, ReloadError>>;
}

/// Where users are stored in a cluster (`cluster::users`, a NATS KV bucket); alone they are in
/// the config file, edited by `manager::users`. Called with the manager's change lock held.
/// After a change is taken, [`UserList::users`] holds it.
pub trait UserList: Send + Sync {
    /// Every stored user, hash included.
    fn users(&self) -> Vec<UserConfig>;

    /// Stores new user `user` (`DuplicateUser` when the name, in any case, is taken).
    fn add(&self, user: UserConfig) -> BoxFuture<'_, Result<(), ChangeError>>;

    /// Stores `user` as user `name` (`UnknownUser`, or `Conflict` when another node changed
    /// it since this one saw it).
    fn replace(&self, name: &str, user: UserConfig) -> BoxFuture<'_, Result<(), ChangeError>>;

    /// Removes user `name`.
    fn remove(&self, name: &str) -> BoxFuture<'_, Result<(), ChangeError>>;
}
