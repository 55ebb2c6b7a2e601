//! `server.auth`: who may use camwall. Tokens for scripts (plain strings, or scoped to some
//! cameras), users who log in with a password (kept only as an argon2id hash), and how long
//! their sessions last. Types, defaults and validation; `access` applies them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// What a user or token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Viewer,
    Admin,
}

/// A token entry: a plain string (the list's role, every camera), or scoped.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TokenEntry {
    Plain(String),
    Scoped(ScopedToken),
}

impl TokenEntry {
    pub fn secret(&self) -> &str {
        match self {
            Self::Plain(t) => t,
            Self::Scoped(s) => &s.token,
        }
    }
}

/// `{"token", "role", "cameras"}`: a token limited to some cameras, as a user may be.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedToken {
    pub token: String,
    /// Default: the role of the list it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    /// Camera ids it may see. Absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cameras: Option<Vec<String>>,
    /// View ids whose cameras it may see (with `cameras`). Absent: none beyond `cameras`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<Vec<String>>,
}

/// One person who logs in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// An argon2id PHC string (`camwall hash-password`); plain passwords are refused.
    pub password_hash: String,
    pub role: RoleName,
    /// Camera ids the user may see; absent (and no `views`): every camera. Viewers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cameras: Option<Vec<String>>,
    /// View ids whose cameras the user may see, besides `cameras`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<Vec<String>>,
}

impl UserConfig {
    /// Whether the user sees only some cameras.
    pub fn scoped(&self) -> bool {
        self.cameras.is_some() || self.views.is_some()
    }
}

fn default_idle() -> u64 {
    720
}

fn default_max_days() -> u64 {
    30
}

fn is_default_idle(v: &u64) -> bool {
    *v == default_idle()
}

fn is_default_max_days(v: &u64) -> bool {
    *v == default_max_days()
}

/// `server.auth` section. `CAMWALL_TOKEN` in the environment adds one admin token.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Tokens that may watch: frames, streams, status, metrics, the camera list.
    #[serde(default)]
    pub viewer_tokens: Vec<TokenEntry>,
    /// Tokens that may also change things: initialize, add, change and remove cameras.
    #[serde(default)]
    pub admin_tokens: Vec<TokenEntry>,
    /// People who log in (`POST /api/login`) and get a session cookie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
    /// A session unused this long ends. Default 720 (12 hours).
    #[serde(default = "default_idle", skip_serializing_if = "is_default_idle")]
    pub session_idle_minutes: u64,
    /// A session ends this long after its login, used or not. Default 30.
    #[serde(
        default = "default_max_days",
        skip_serializing_if = "is_default_max_days"
    )]
    pub session_max_days: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            viewer_tokens: Vec::new(),
            admin_tokens: Vec::new(),
            users: Vec::new(),
            session_idle_minutes: default_idle(),
            session_max_days: default_max_days(),
        }
    }
}

/// Longest user name.
pub const MAX_NAME: usize = 64;
/// Most users a config may hold (each login costs an argon2 hash; the list is read at start).
pub const MAX_USERS: usize = 1000;

/// Whether `hash` is an argon2id PHC string with its parameters, salt and hash.
pub fn is_argon2id(hash: &str) -> bool {
    hash.starts_with("$argon2id$")
        && argon2::password_hash::PasswordHash::new(hash)
            .is_ok_and(|h| h.hash.is_some() && h.salt.is_some())
}

/// Checks `server.auth` against the config's view ids; (field, message) pairs. Secrets (tokens,
/// hashes) are never part of a message.
pub fn validate(auth: &AuthConfig, view_ids: &HashSet<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let tokens = auth
        .viewer_tokens
        .iter()
        .map(|t| ("viewer_tokens", t))
        .chain(auth.admin_tokens.iter().map(|t| ("admin_tokens", t)));
    let mut bad_token = false;
    for (i, (list, t)) in tokens.enumerate() {
        let secret = t.secret();
        if !bad_token
            && (secret.len() < 16 || secret.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            out.push((
                "auth".to_string(),
                "tokens must be at least 16 characters with no spaces (the token is not shown)"
                    .into(),
            ));
            bad_token = true;
        }
        if let TokenEntry::Scoped(s) = t {
            let admin = match s.role {
                Some(r) => r == RoleName::Admin,
                None => list == "admin_tokens",
            };
            if admin && (s.cameras.is_some() || s.views.is_some()) {
                out.push((
                    format!("auth.{list}"),
                    format!("entry {i}: an admin token sees every camera; cameras and views are for viewers"),
                ));
            }
            for v in s.views.iter().flatten() {
                if !view_ids.contains(v.as_str()) {
                    out.push((format!("auth.{list}"), format!("entry {i}: no view {v:?}")));
                }
            }
        }
    }
    if auth.users.len() > MAX_USERS {
        out.push(("auth.users".into(), format!("at most {MAX_USERS} users")));
    }
    let mut names = HashSet::new();
    for (i, u) in auth.users.iter().enumerate() {
        let at = |field: &str| format!("auth.users[{i}].{field}");
        let name_ok = !u.name.is_empty()
            && u.name.len() <= MAX_NAME
            && u.name
                .chars()
                .all(|c| c.is_alphanumeric() || "._-@".contains(c));
        if !name_ok {
            out.push((
                at("name"),
                format!("1 to {MAX_NAME} letters, digits, '.', '_', '-' or '@'"),
            ));
        } else if !names.insert(u.name.to_lowercase()) {
            out.push((at("name"), format!("{:?} is listed twice", u.name)));
        }
        if !is_argon2id(&u.password_hash) {
            out.push((
                at("password_hash"),
                "must be an argon2id hash ($argon2id$...) as `camwall hash-password` prints; \
                 plain passwords are not accepted (the value is not shown)"
                    .into(),
            ));
        }
        if u.role == RoleName::Admin && u.scoped() {
            out.push((
                at("role"),
                "an admin sees every camera; cameras and views are for viewers".into(),
            ));
        }
        for v in u.views.iter().flatten() {
            if !view_ids.contains(v.as_str()) {
                out.push((at("views"), format!("no view {v:?}")));
            }
        }
    }
    if !(1..=525_600).contains(&auth.session_idle_minutes) {
        out.push((
            "auth.session_idle_minutes".into(),
            "must be between 1 and 525600".into(),
        ));
    }
    if !(1..=3650).contains(&auth.session_max_days) {
        out.push((
            "auth.session_max_days".into(),
            "must be between 1 and 3650".into(),
        ));
    }
    out
}
