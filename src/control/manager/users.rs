//! Users at run time (`/api/users`, admins only): list, add, replace and remove the people who
//! log in, each change an edit of the config file like a view change (`file.rs`: validated as a
//! whole config, written atomically, never over a hand edit), then handed to the access guard
//! at once (the hook a reload uses): a user changed or removed loses their sessions. The API
//! never answers a hash. In a cluster the users live in the shared [`UserList`] instead (the
//! file's users only seed an empty one), and every node applies a change as its watch brings
//! it ([`Manager::apply_user_list`]).

use serde::Serialize;
use serde_json::Value;
use tracing::info;

use super::{ChangeError, Manager, UserList};
use crate::config::auth::{RoleName, UserConfig};
use crate::config::AuthConfig;

/// A user as the API shows them: no hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: RoleName,
    pub cameras: Option<Vec<String>>,
    pub views: Option<Vec<String>>,
}

impl From<&UserConfig> for UserView {
    fn from(u: &UserConfig) -> Self {
        Self {
            name: u.name.clone(),
            role: u.role,
            cameras: u.cameras.clone(),
            views: u.views.clone(),
        }
    }
}

/// `server.auth.users` of `doc`, made when absent.
fn users_mut(doc: &mut Value) -> Result<&mut Vec<Value>, ChangeError> {
    let bad = || ChangeError::InvalidUser {
        field: "(body)".into(),
        message: "the config file's server.auth is not a JSON object".into(),
    };
    let mut at = doc;
    for key in ["server", "auth"] {
        at = at
            .as_object_mut()
            .ok_or_else(bad)?
            .entry(key)
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    let users = at
        .as_object_mut()
        .ok_or_else(bad)?
        .entry("users")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !users.is_array() {
        *users = Value::Array(Vec::new());
    }
    users.as_array_mut().ok_or_else(bad)
}

fn position(users: &[Value], name: &str) -> Option<usize> {
    users.iter().position(|u| {
        u.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

impl Manager {
    /// Cluster mode: users are stored in `list` from now on.
    pub fn set_user_list(&self, list: std::sync::Arc<dyn UserList>) {
        let _ = self.user_list.set(list);
    }

    /// Every user as stored, hashes included.
    async fn stored_users(&self) -> Vec<UserConfig> {
        match self.user_list.get() {
            Some(list) => list.users(),
            None => self.file.users().await,
        }
    }

    /// The users of the config file (to seed an empty cluster list).
    pub async fn file_users(&self) -> Vec<UserConfig> {
        self.file.users().await
    }

    /// The users, without their hashes.
    pub async fn users(&self) -> Vec<UserView> {
        self.stored_users()
            .await
            .iter()
            .map(UserView::from)
            .collect()
    }

    /// What is stored of `name` (any case), hash included: a replacement without a new
    /// password keeps it.
    pub async fn user(&self, name: &str) -> Option<UserConfig> {
        self.stored_users()
            .await
            .into_iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
    }

    /// Hands `users` to the access guard (a changed or removed user's sessions end).
    fn apply_users(&self, users: Vec<UserConfig>) {
        if let Some(hook) = self.on_auth.get() {
            hook(&AuthConfig {
                users,
                ..AuthConfig::default()
            });
        }
    }

    /// Hands the cluster's user list, as it is now, to the access guard: its watch after each
    /// change it brings, the API after each change it makes. Read and handed over under one
    /// lock, so an older list never replaces a newer one.
    pub fn apply_user_list(&self) {
        if let Some(list) = self.user_list.get() {
            let _one = self
                .user_apply
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.apply_users(list.users());
        }
    }

    /// Stores one change: in the cluster's list, or as `edit` of the file's users; then
    /// applies the new list.
    async fn change_users(
        &self,
        shared: impl FnOnce(&dyn UserList) -> super::BoxFuture<'_, Result<(), ChangeError>>,
        edit: impl FnOnce(&mut Vec<Value>) -> Result<(), ChangeError> + Send,
    ) -> Result<(), ChangeError> {
        let _serial = self.changes.lock().await;
        match self.user_list.get() {
            Some(list) => {
                shared(list.as_ref()).await?;
                self.apply_user_list();
            }
            None => {
                self.file.edit(|doc| edit(users_mut(doc)?)).await?;
                self.apply_users(self.file.users().await);
            }
        }
        Ok(())
    }

    /// Adds `user` (`POST /api/users`; its password already hashed).
    pub async fn add_user(&self, user: UserConfig) -> Result<UserView, ChangeError> {
        let value = serde_json::to_value(&user).unwrap_or_default();
        let name = user.name.clone();
        let stored = user.clone();
        self.change_users(
            |list| list.add(stored),
            |users| {
                if position(users, &name).is_some() {
                    return Err(ChangeError::DuplicateUser(name.clone()));
                }
                users.push(value);
                Ok(())
            },
        )
        .await?;
        info!(user = %user.name, "user added");
        Ok(UserView::from(&user))
    }

    /// Replaces user `name` with `user` (`PUT /api/users/{name}`; the name stays).
    pub async fn replace_user(
        &self,
        name: &str,
        user: UserConfig,
    ) -> Result<UserView, ChangeError> {
        let value = serde_json::to_value(&user).unwrap_or_default();
        let stored = user.clone();
        self.change_users(
            |list| list.replace(name, stored),
            |users| {
                let pos = position(users, name)
                    .ok_or_else(|| ChangeError::UnknownUser(short_name(name)))?;
                users[pos] = value;
                Ok(())
            },
        )
        .await?;
        info!(user = %user.name, "user changed");
        Ok(UserView::from(&user))
    }

    /// Removes user `name` (`DELETE /api/users/{name}`).
    pub async fn remove_user(&self, name: &str) -> Result<(), ChangeError> {
        self.change_users(
            |list| list.remove(name),
            |users| {
                let pos = position(users, name)
                    .ok_or_else(|| ChangeError::UnknownUser(short_name(name)))?;
                users.remove(pos);
                Ok(())
            },
        )
        .await?;
        info!(user = %short_name(name), "user removed");
        Ok(())
    }
}

/// A user name as an error or log line shows it (at most 64 characters).
pub fn short_name(name: &str) -> String {
    name.chars().take(64).collect()
}
