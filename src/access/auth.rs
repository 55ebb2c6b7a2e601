//! Who may do what: viewer and admin tokens compared in constant time, and WebSocket `Origin`
//! checks. Admission (how many clients) lives in `limits`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use warp::{Filter, Rejection};

/// What a token may do. Admin includes everything a viewer may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Frames, streams, status, metrics, the camera list.
    Viewer,
    /// Also initialize and every change to cameras.
    Admin,
}

/// The configured tokens. No token at all: everything is open (the loopback default).
#[derive(Default)]
pub struct Auth {
    tokens: Vec<(Vec<u8>, Role)>,
}

/// Compares two byte strings in time that depends only on their lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or an unknown one: 401.
    Unauthorized,
    /// A viewer token on an admin path: 403.
    Forbidden,
}

impl warp::reject::Reject for Denied {}

impl Auth {
    pub fn new(viewer: &[String], admin: &[String], env_admin: Option<String>) -> Self {
        let mut tokens: Vec<(Vec<u8>, Role)> = viewer
            .iter()
            .map(|t| (t.as_bytes().to_vec(), Role::Viewer))
            .chain(admin.iter().map(|t| (t.as_bytes().to_vec(), Role::Admin)))
            .collect();
        if let Some(t) = env_admin.filter(|t| !t.is_empty()) {
            tokens.push((t.into_bytes(), Role::Admin));
        }
        Self { tokens }
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The best role `presented` grants. Every configured token is compared, whatever matches.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let mut best = None;
        for (t, role) in &self.tokens {
            if ct_eq(t, presented.as_bytes()) {
                best = best.max(Some(*role));
            }
        }
        best
    }

    pub fn check(&self, presented: Option<&str>, need: Role) -> Result<(), Denied> {
        if self.is_open() {
            return Ok(());
        }
        match presented.and_then(|t| self.role_of(t)) {
            None => Err(Denied::Unauthorized),
            Some(r) if r < need => Err(Denied::Forbidden),
            Some(_) => Ok(()),
        }
    }
}

/// The token a request carries: `Authorization: Bearer <t>`, else `?token=<t>` (for `<img>`
/// and WebSocket, which cannot send headers from a browser).
pub fn presented_token() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
        .and(
            warp::query::<HashMap<String, String>>()
                .or(warp::any().map(HashMap::new))
                .unify(),
        )
        .map(|header: Option<String>, query: HashMap<String, String>| {
            header
                .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
                .or_else(|| query.get("token").cloned())
        })
}

/// Passes when the request's token grants `need`; rejects with [`Denied`] otherwise.
pub fn require(
    auth: Arc<Auth>,
    need: Role,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    presented_token()
        .and_then(move |t: Option<String>| {
            let auth = auth.clone();
            async move { auth.check(t.as_deref(), need).map_err(warp::reject::custom) }
        })
        .untuple_one()
}

/// Whether a WebSocket upgrade from `origin` may proceed: no Origin (not a browser), the
/// server's own origin (same host and port as `Host`), or one of `allowed`.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else { return true };
    if allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    {
        return true;
    }
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    host.is_some_and(|h| !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn roles() {
        let open = Auth::new(&[], &[], None);
        assert_eq!(open.check(None, Role::Admin), Ok(()));
        let a = Auth::new(&["v".into()], &["a".into()], Some("env".into()));
        assert_eq!(a.check(None, Role::Viewer), Err(Denied::Unauthorized));
        assert_eq!(a.check(Some("x"), Role::Viewer), Err(Denied::Unauthorized));
        assert_eq!(a.check(Some("v"), Role::Viewer), Ok(()));
        assert_eq!(a.check(Some("v"), Role::Admin), Err(Denied::Forbidden));
        assert_eq!(a.check(Some("a"), Role::Admin), Ok(()));
        assert_eq!(a.check(Some("env"), Role::Admin), Ok(()));
    }

    #[test]
    fn origins() {
        assert!(origin_allowed(None, Some("h:1"), &[]));
        assert!(origin_allowed(Some("http://h:1"), Some("h:1"), &[]));
        assert!(origin_allowed(Some("https://H:1"), Some("h:1"), &[]));
        assert!(!origin_allowed(Some("http://evil:1"), Some("h:1"), &[]));
        assert!(!origin_allowed(Some("null"), Some("h:1"), &[]));
        assert!(origin_allowed(
            Some("https://wall.example"),
            Some("h:1"),
            &["https://wall.example".into()]
        ));
    }
}
