//! The people who log in: their names, roles, scopes and argon2id password hashes, from
//! `server.auth.users`. Checking a password is blocking (tens of milliseconds by design) and
//! costs the same whether the name exists or not: an unknown name is checked against a hash
//! made at start with the same parameters, so timing does not tell which names exist.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::auth::{Grant, Role, ScopeSpec};
use crate::config::auth::UserConfig;

/// Shortest password camwall hashes (OWASP ASVS 2.1.1): the API and `camwall hash-password`.
pub const MIN_PASSWORD: usize = 12;
/// Longest password (argon2 takes any length; a bound keeps a request's cost bounded).
pub const MAX_PASSWORD: usize = 256;

/// One user.
#[derive(Debug)]
pub struct User {
    /// As configured (shown, logged).
    pub name: String,
    pub grant: Grant,
    hash: String,
    /// Of the hash, role and scope: a session made under other values is over.
    fingerprint: u64,
}

impl User {
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// The configured users, by lowercased name.
#[derive(Default)]
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    /// What an unknown name is checked against.
    decoy: String,
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("argon2: {0}")]
pub struct HashError(String);

/// An argon2id PHC string of `password` with a fresh random salt and the crate's default
/// parameters (OWASP's: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| HashError("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Of the hash, role and scope as stored: the same on every node and every build, so that a
/// session shared between cluster nodes is checked against the same user everywhere.
fn fingerprint(u: &UserConfig) -> u64 {
    let stored =
        serde_json::to_vec(&(&u.password_hash, u.role, &u.cameras, &u.views)).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, &stored);
    let mut first = [0u8; 8];
    first.copy_from_slice(&d.as_ref()[..8]);
    u64::from_le_bytes(first)
}

impl Users {
    /// The users of `config` (validated: every hash is argon2id).
    pub fn new(config: &[UserConfig]) -> Self {
        let by_name = Self::by_name(config);
        // Only when someone can log in: a hash costs tens of milliseconds.
        let decoy = if by_name.is_empty() {
            String::new()
        } else {
            hash_password("a password no one has").unwrap_or_default()
        };
        Self { by_name, decoy }
    }

    /// The users of `config` in place of these: the decoy hash is kept (making one costs tens
    /// of milliseconds, and a cluster applies every change it watches).
    pub fn replaced_by(&self, config: &[UserConfig]) -> Self {
        if self.decoy.is_empty() {
            return Self::new(config);
        }
        Self {
            by_name: Self::by_name(config),
            decoy: self.decoy.clone(),
        }
    }

    fn by_name(config: &[UserConfig]) -> HashMap<String, Arc<User>> {
        config
            .iter()
            .map(|u| {
                let grant = Grant {
                    role: Role::from(u.role),
                    scope: ScopeSpec::new(u.cameras.as_ref(), u.views.as_ref()),
                };
                let user = User {
                    name: u.name.clone(),
                    grant,
                    hash: u.password_hash.clone(),
                    fingerprint: fingerprint(u),
                };
                (u.name.to_lowercase(), Arc::new(user))
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user named `name` (any case).
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.by_name.get(&name.to_lowercase()).cloned()
    }

    /// The user `name` when `password` is theirs. Blocking: run it off the async workers.
    pub fn verify(&self, name: &str, password: &str) -> Option<Arc<User>> {
        let user = self.get(name);
        let hash = user
            .as_ref()
            .map_or(self.decoy.as_str(), |u| u.hash.as_str());
        crate::obs::metrics::password_checked();
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        user.filter(|_| ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::{is_argon2id, RoleName};

    fn user(name: &str, password: &str) -> UserConfig {
        UserConfig {
            name: name.into(),
            password_hash: hash_password(password).unwrap(),
            role: RoleName::Viewer,
            cameras: Some(vec!["a".into()]),
            views: None,
        }
    }

    #[test]
    fn a_password_checks_against_its_hash_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(is_argon2id(&h), "{h}");
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
        let users = Users::new(&[user("Staff", "correct horse")]);
        let u = users.verify("staff", "correct horse").expect("any case");
        assert_eq!(u.name, "Staff");
        assert_eq!(u.grant.scope.cameras, Some(vec!["a".to_string()]));
        assert!(users.verify("Staff", "wrong").is_none());
        assert!(users.verify("nobody", "correct horse").is_none());
    }

    #[test]
    fn a_changed_hash_or_scope_changes_the_fingerprint() {
        let a = Users::new(&[user("s", "one")]);
        let b = Users::new(&[user("s", "two")]);
        let fp = |u: &Users| u.get("s").unwrap().fingerprint();
        assert_ne!(fp(&a), fp(&b));
        let mut same = user("s", "one");
        same.password_hash = a.get("s").unwrap().hash.clone();
        assert_eq!(fp(&a), fp(&Users::new(std::slice::from_ref(&same))));
        same.cameras = None;
        assert_ne!(fp(&a), fp(&Users::new(&[same])));
    }
}
