//! The rules the access guard (`guard`) applies: viewer and admin tokens (plain, or scoped to
//! some cameras) compared in constant time, WebSocket `Origin` checks, and the cross-site
//! request checks on state-changing requests (CSRF). Users and their sessions live in `users`
//! and `sessions`; admission (how many clients) in `limits`.

use std::collections::HashMap;
use std::convert::Infallible;

use warp::{Filter, Rejection};

use crate::config::auth::{RoleName, TokenEntry};

/// What a token may do. Admin includes everything a viewer may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Frames, streams, status, metrics, the camera list.
    Viewer,
    /// Also initialize and every change to cameras.
    Admin,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Viewer => Role::Viewer,
            RoleName::Admin => Role::Admin,
        }
    }
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        }
    }
}

/// Which cameras a token or user may see, as configured: camera ids and view ids (a view
/// grants its cameras, looked up when a request comes, so that a view edited later counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSpec {
    /// `None` with no views: every camera.
    pub cameras: Option<Vec<String>>,
    pub views: Vec<String>,
}

impl ScopeSpec {
    pub fn new(cameras: Option<&Vec<String>>, views: Option<&Vec<String>>) -> Self {
        let views = views.cloned().unwrap_or_default();
        let cameras = match (cameras, views.is_empty()) {
            (None, true) => None,
            (c, _) => Some(c.cloned().unwrap_or_default()),
        };
        Self { cameras, views }
    }
}

/// What a token or user may do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    pub role: Role,
    pub scope: ScopeSpec,
}

/// The configured tokens. No token at all: open, unless users are configured (the loopback
/// default has neither).
#[derive(Default)]
pub struct Auth {
    tokens: Vec<(Vec<u8>, Grant)>,
}

/// Compares two byte strings in time that depends only on their lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

impl Auth {
    pub fn new(viewer: &[TokenEntry], admin: &[TokenEntry], env_admin: Option<String>) -> Self {
        let entry = |t: &TokenEntry, list_role: Role| {
            let grant = match t {
                TokenEntry::Plain(_) => Grant {
                    role: list_role,
                    scope: ScopeSpec::default(),
                },
                TokenEntry::Scoped(s) => Grant {
                    role: s.role.map_or(list_role, Role::from),
                    scope: ScopeSpec::new(s.cameras.as_ref(), s.views.as_ref()),
                },
            };
            (t.secret().as_bytes().to_vec(), grant)
        };
        let mut tokens: Vec<(Vec<u8>, Grant)> = viewer
            .iter()
            .map(|t| entry(t, Role::Viewer))
            .chain(admin.iter().map(|t| entry(t, Role::Admin)))
            .collect();
        if let Some(t) = env_admin.filter(|t| !t.is_empty()) {
            tokens.push((
                t.into_bytes(),
                Grant {
                    role: Role::Admin,
                    scope: ScopeSpec::default(),
                },
            ));
        }
        Self { tokens }
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// What `presented` grants (the best role among the tokens it matches). Every configured
    /// token is compared, whatever matches.
    pub fn grant_of(&self, presented: &str) -> Option<&Grant> {
        let mut best: Option<&Grant> = None;
        for (t, grant) in &self.tokens {
            if ct_eq(t, presented.as_bytes()) && best.is_none_or(|b| grant.role > b.role) {
                best = Some(grant);
            }
        }
        best
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

/// A request body that is not declared JSON: 415 `unsupported_media_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

impl warp::reject::Reject for NotJson {}

/// Whether a request may change state, seen from the browser's headers: a page on another site
/// can make a visitor's browser send a form or a "simple" `fetch` (no preflight) to camwall,
/// tokens in cookies or not, and the answer need not be readable for the harm to be done. So a
/// state-changing method is refused when `Origin` is present and foreign, or the browser says
/// `Sec-Fetch-Site: cross-site`. Tools (curl, scripts) send neither header and pass.
pub fn cross_site_refused(
    method: &warp::http::Method,
    origin: Option<&str>,
    host: Option<&str>,
    sec_fetch_site: Option<&str>,
    allowed: &[String],
) -> bool {
    use warp::http::Method;
    let changes_state = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    changes_state
        && (sec_fetch_site.is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
            || !origin_allowed(origin, host, allowed))
}

/// Whether a `Content-Type` declares JSON (`application/json`, parameters allowed). Forms and
/// `text/plain` are what another site can send without a preflight, so only JSON is taken.
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Passes when the request's body is declared JSON; rejects with [`NotJson`] otherwise.
pub fn json_body() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and_then(|ct: Option<String>| async move {
            if is_json(ct.as_deref()) {
                Ok(())
            } else {
                Err(warp::reject::custom(NotJson))
            }
        })
        .untuple_one()
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
        assert!(Auth::new(&[], &[], None).is_open());
        let plain = |t: &str| TokenEntry::Plain(t.into());
        let a = Auth::new(&[plain("v")], &[plain("a")], Some("env".into()));
        assert!(!a.is_open());
        let role_of = |t: &str| a.grant_of(t).map(|g| g.role);
        assert_eq!(role_of("x"), None);
        assert_eq!(role_of("v"), Some(Role::Viewer));
        assert_eq!(role_of("a"), Some(Role::Admin));
        assert_eq!(role_of("env"), Some(Role::Admin));
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

    #[test]
    fn cross_site_state_changes_are_refused() {
        use warp::http::Method;
        let host = Some("127.0.0.1:8000");
        let refused = |m: Method, origin, site| cross_site_refused(&m, origin, host, site, &[]);
        assert!(refused(Method::POST, Some("http://evil.example"), None));
        assert!(refused(Method::DELETE, Some("null"), None));
        assert!(refused(Method::PATCH, None, Some("cross-site")));
        assert!(!refused(Method::POST, Some("http://127.0.0.1:8000"), None));
        assert!(!refused(Method::POST, None, None), "tools send no Origin");
        assert!(!refused(Method::PUT, None, Some("same-origin")));
        // Reading is never refused here: the WebSocket has its own origin check.
        assert!(!refused(
            Method::GET,
            Some("http://evil.example"),
            Some("cross-site")
        ));
        assert!(!cross_site_refused(
            &Method::POST,
            Some("https://wall.example"),
            host,
            None,
            &["https://wall.example".into()]
        ));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(Some("application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }
}
