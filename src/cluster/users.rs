//! The shared users: a JetStream KV bucket (key = the lowercased name, hex; value = the user
//! as `server.auth.users` holds them, argon2id hash included) that every node watches and
//! hands to its access guard through `control::Manager`, so a user logs in on any node.
//!
//! The bucket is seeded from the first node's config file, once in the cluster's life. Until
//! a node has read the list it uses its own file's users. After any break the node reads the
//! whole list again. An entry that is not a valid user (a hand
//! write to the bucket) is left out with a warning that names it, never its hash.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::auth::{is_argon2id, UserConfig, MAX_USERS};
use crate::control::{BoxFuture, ChangeError, Manager, UserList};
use crate::obs::redact::redact_url;

/// The users' bucket.
pub const USERS_BUCKET: &str = "camwall_users";
/// The key that says the bucket was seeded (not a user's: those start with `u.`).
const SEEDED: &str = "seeded";

/// The users as this node last read them: key → (revision, user).
pub struct SharedUsers {
    store: Mutex<Option<kv::Store>>,
    users: Mutex<BTreeMap<String, (u64, UserConfig)>>,
    replicas: usize,
}

/// A user's key: KV keys take only `[-/_=.a-zA-Z0-9]`, names take any letter and `@`.
fn key_of(name: &str) -> String {
    let mut k = String::from("u.");
    for b in name.to_lowercase().bytes() {
        k.push_str(&format!("{b:02x}"));
    }
    k
}

fn unavailable(e: impl std::fmt::Display) -> ChangeError {
    ChangeError::Unavailable(redact_url(&e.to_string()))
}

/// The user an entry holds, when it is one stored under its own name.
fn parse(key: &str, value: &[u8]) -> Option<UserConfig> {
    match serde_json::from_slice::<UserConfig>(value) {
        Ok(u) if key_of(&u.name) == key && is_argon2id(&u.password_hash) => Some(u),
        Ok(u) => {
            let name: String = u.name.chars().take(64).collect();
            warn!(user = %name, "cluster: user list entry is not under its name or has no argon2id hash; ignored");
            None
        }
        Err(e) => {
            // serde's message may quote the value it met: only its kind is said.
            warn!(
                key,
                "cluster: user list entry is not a user ({:?}); ignored",
                e.classify()
            );
            None
        }
    }
}

impl SharedUsers {
    /// A list whose bucket, if this node creates it, has `replicas` copies.
    pub fn new(replicas: usize) -> Self {
        Self {
            store: Mutex::new(None),
            users: Mutex::new(BTreeMap::new()),
            replicas,
        }
    }

    fn kv(&self) -> Result<kv::Store, ChangeError> {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| unavailable("not connected to NATS yet"))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (u64, UserConfig)>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the users in step with the bucket until `cancel`.
    pub async fn run(
        self: Arc<Self>,
        client: async_nats::Client,
        manager: Arc<Manager>,
        cancel: CancellationToken,
    ) {
        let c = client.clone();
        let stop = cancel.clone();
        super::watch::keep_in_step(client, cancel, "user list", |js| {
            let (me, client, manager, cancel) =
                (self.clone(), c.clone(), manager.clone(), stop.clone());
            async move { me.sync_and_watch(&js, &client, &manager, &cancel).await }
        })
        .await
    }

    async fn sync_and_watch(
        &self,
        js: &jetstream::Context,
        client: &async_nats::Client,
        manager: &Manager,
        cancel: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let kv = super::bucket(js, USERS_BUCKET, Duration::ZERO, self.replicas).await?;
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(kv.clone());
        let mut from = super::watch::last_revision(js, USERS_BUCKET).await?;
        let mut list = read_all(&kv).await?;
        // The list is seeded once in the cluster's life: the marker, written once every user
        // of the seed is, says it was. A list its admins emptied then stays empty when a node
        // restarts with users in its file; a seed cut short is completed (creates only).
        if kv.entry(SEEDED).await?.is_none() {
            let users = manager.file_users().await;
            if !users.is_empty() {
                info!(
                    users = users.len(),
                    "cluster: seeding the user list from the config file"
                );
            }
            for u in users {
                let value = Bytes::from(serde_json::to_vec(&u)?);
                match kv.create(key_of(&u.name).as_str(), value).await {
                    Ok(_) => {}
                    // Another node seeded it first: its value stands.
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match kv.create(SEEDED, Bytes::from_static(b"1")).await {
                Ok(_) => {}
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            from = super::watch::last_revision(js, USERS_BUCKET).await?;
            list = read_all(&kv).await?;
        }
        *self.map() = list;
        manager.apply_user_list();
        let mut watch = kv.watch_all_from_revision(from + 1).await?;
        let mut check = tokio::time::interval(super::watch::CHECK_EVERY);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                _ = check.tick() => {
                    if !super::watch::connected(client) {
                        return Err(super::watch::lost());
                    }
                }
                entry = watch.next() => match entry {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(e)) => {
                        if e.key == SEEDED {
                            continue;
                        }
                        let user = (e.operation == kv::Operation::Put)
                            .then(|| parse(&e.key, &e.value))
                            .flatten();
                        {
                            let mut map = self.map();
                            match user {
                                // Not over a newer revision this node wrote meanwhile.
                                Some(_) if map.get(&e.key).is_some_and(|(r, _)| *r > e.revision) => {}
                                Some(u) if map.len() < MAX_USERS || map.contains_key(&e.key) => {
                                    map.insert(e.key.clone(), (e.revision, u));
                                }
                                Some(_) => warn!("cluster: the user list holds more than {MAX_USERS} users; the rest are ignored"),
                                None => {
                                    map.remove(&e.key);
                                }
                            }
                        }
                        manager.apply_user_list();
                    }
                }
            }
        }
    }
}

/// Every valid user: key → (revision, user).
async fn read_all(
    kv: &kv::Store,
) -> Result<BTreeMap<String, (u64, UserConfig)>, async_nats::Error> {
    let mut keys = kv.keys().await?;
    let mut names = Vec::new();
    while let Some(k) = keys.next().await {
        let k = k?;
        if k == SEEDED {
            continue;
        }
        names.push(k);
        if names.len() >= MAX_USERS {
            warn!("cluster: the user list holds more than {MAX_USERS} users; the rest are ignored");
            break;
        }
    }
    let mut out = BTreeMap::new();
    for key in names {
        if let Some(e) = kv.entry(key.as_str()).await? {
            if e.operation == kv::Operation::Put {
                if let Some(u) = parse(&key, &e.value) {
                    out.insert(key, (e.revision, u));
                }
            }
        }
    }
    Ok(out)
}

impl SharedUsers {
    /// Writes `user` under its key: new (`base` none) or over revision `base`.
    async fn put(&self, user: UserConfig, base: Option<u64>) -> Result<(), ChangeError> {
        let kv = self.kv()?;
        let key = key_of(&user.name);
        let bytes = Bytes::from(serde_json::to_vec(&user).map_err(unavailable)?);
        let short = crate::control::short_name(&user.name);
        let revision = match base {
            None => kv.create(key.as_str(), bytes).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    ChangeError::DuplicateUser(short.clone())
                } else {
                    unavailable(e)
                }
            })?,
            Some(r) => kv.update(key.as_str(), bytes, r).await.map_err(|e| {
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    ChangeError::UserConflict(short.clone())
                } else {
                    unavailable(e)
                }
            })?,
        };
        let mut map = self.map();
        // The watch may have brought a newer revision already.
        if map.get(&key).is_none_or(|(r, _)| *r < revision) {
            map.insert(key, (revision, user));
        }
        Ok(())
    }

    fn revision(&self, name: &str) -> Result<u64, ChangeError> {
        self.map()
            .get(&key_of(name))
            .map(|(r, _)| *r)
            .ok_or_else(|| ChangeError::UnknownUser(crate::control::short_name(name)))
    }
}

impl UserList for SharedUsers {
    fn users(&self) -> Vec<UserConfig> {
        self.map().values().map(|(_, u)| u.clone()).collect()
    }

    fn add(&self, user: UserConfig) -> BoxFuture<'_, Result<(), ChangeError>> {
        Box::pin(self.put(user, None))
    }

    fn replace(&self, name: &str, user: UserConfig) -> BoxFuture<'_, Result<(), ChangeError>> {
        let base = self.revision(name);
        Box::pin(async move { self.put(user, Some(base?)).await })
    }

    fn remove(&self, name: &str) -> BoxFuture<'_, Result<(), ChangeError>> {
        let key = key_of(name);
        let base = self.revision(name);
        let name = crate::control::short_name(name);
        Box::pin(async move {
            let base = base?;
            let kv = self.kv()?;
            if let Err(e) = kv.delete_expect_revision(key.as_str(), Some(base)).await {
                return Err(match kv.entry(key.as_str()).await {
                    Ok(Some(now)) if now.revision != base => ChangeError::UserConflict(name),
                    _ => unavailable(e),
                });
            }
            self.map().remove(&key);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kv_safe_and_one_per_name_in_any_case() {
        let k = key_of("Zoë@shop.example");
        assert!(k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c)));
        assert_eq!(k, key_of("zoë@SHOP.example"));
        assert_ne!(k, key_of("zoe@shop.example"));
    }

    #[test]
    fn an_entry_must_be_a_user_under_its_own_name_with_an_argon2id_hash() {
        let hash = crate::access::users::hash_password("a long password").unwrap();
        let u = serde_json::json!({"name": "staff", "password_hash": hash, "role": "viewer"});
        let bytes = serde_json::to_vec(&u).unwrap();
        assert_eq!(parse(&key_of("STAFF"), &bytes).unwrap().name, "staff");
        assert!(parse(&key_of("other"), &bytes).is_none());
        let plain =
            serde_json::json!({"name": "staff", "password_hash": "hunter2", "role": "viewer"});
        assert!(parse(&key_of("staff"), &serde_json::to_vec(&plain).unwrap()).is_none());
        assert!(parse(&key_of("staff"), b"not json").is_none());
    }
}
