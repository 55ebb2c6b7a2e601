//! Users at run time (`/api/users`, admins only): list, add, replace and remove the people who
//! log in, each change an edit of the config file like a view change (`file.rs`: validated as a
//! whole config, written atomically, never over a hand edit), then handed to the access guard
//! at once (the hook a reload uses): a user changed or removed loses their sessions. The API
//! never answers a hash; in a cluster each node's file holds its own users.

use serde::Serialize;
use serde_json::Value;
use tracing::info;

use super::{ChangeError, Manager};
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
    /// The users in the file, without their hashes.
    pub async fn users(&self) -> Vec<UserView> {
        self.file.users().await.iter().map(UserView::from).collect()
    }

    /// What the file holds of `name` (any case), hash included: a replacement without a new
    /// password keeps it.
    pub async fn user(&self, name: &str) -> Option<UserConfig> {
        self.file
            .users()
            .await
            .into_iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
    }

    /// Writes `edit` of the file's users, then applies the new list.
    async fn edit_users<T>(
        &self,
        edit: impl FnOnce(&mut Vec<Value>) -> Result<T, ChangeError> + Send,
    ) -> Result<T, ChangeError> {
        let _serial = self.changes.lock().await;
        let out = self.file.edit(|doc| edit(users_mut(doc)?)).await?;
        if let Some(hook) = self.on_auth.get() {
            hook(&AuthConfig {
                users: self.file.users().await,
                ..AuthConfig::default()
            });
        }
        Ok(out)
    }

    /// Adds `user` (`POST /api/users`; its password already hashed).
    pub async fn add_user(&self, user: UserConfig) -> Result<UserView, ChangeError> {
        let value = serde_json::to_value(&user).unwrap_or_default();
        let name = user.name.clone();
        self.edit_users(|users| {
            if position(users, &name).is_some() {
                return Err(ChangeError::DuplicateUser(name.clone()));
            }
            users.push(value);
            Ok(())
        })
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
        self.edit_users(|users| {
            let pos = position(users, name).ok_or_else(|| ChangeError::UnknownUser(short(name)))?;
            users[pos] = value;
            Ok(())
        })
        .await?;
        info!(user = %user.name, "user changed");
        Ok(UserView::from(&user))
    }

    /// Removes user `name` (`DELETE /api/users/{name}`).
    pub async fn remove_user(&self, name: &str) -> Result<(), ChangeError> {
        self.edit_users(|users| {
            let pos = position(users, name).ok_or_else(|| ChangeError::UnknownUser(short(name)))?;
            users.remove(pos);
            Ok(())
        })
        .await?;
        info!(user = %short(name), "user removed");
        Ok(())
    }
}

fn short(name: &str) -> String {
    name.chars().take(64).collect()
}
