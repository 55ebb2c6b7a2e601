//! `POST /api/login`, `POST /api/logout` and `GET /api/session`: a user's password for a
//! session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS), the session's end, and
//! who the page is (for the wall and settings pages: whether to send a person to `/login`).
//! The password check runs on the blocking pool, at most [`HASHING`] at once; the throttle
//! and the session table are the guard's (`access`).

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use warp::http::{header, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::ApiError;
use super::state::WebState;
use crate::access::audit;
use crate::access::guard::{Asking, PeerAddr, Principal, Scope, Who};
use crate::access::sessions::COOKIE;

/// Password checks running at once: each takes a core and 19 MiB for tens of milliseconds.
pub(super) static HASHING: Semaphore = Semaphore::const_new(2);
/// How long a login waits for a place to check its password before a 503.
const HASHING_WAIT: Duration = Duration::from_secs(10);
/// Largest login body.
const MAX_BODY: u64 = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginReq {
    user: String,
    password: String,
}

/// What a request says about itself, as the guard reads it.
#[derive(Clone)]
struct Parts {
    method: Method,
    cookie: Option<String>,
    origin: Option<String>,
    host: Option<String>,
    site: Option<String>,
    peer: Option<PeerAddr>,
}

impl Parts {
    fn asking(&self) -> Asking<'_> {
        Asking {
            method: &self.method,
            token: None,
            session: self.cookie.as_deref(),
            origin: self.origin.as_deref(),
            host: self.host.as_deref(),
            sec_fetch_site: self.site.as_deref(),
            peer: self.peer.map(|p| p.0),
        }
    }
}

fn parts() -> impl Filter<Extract = (Parts,), Error = Rejection> + Clone {
    warp::method()
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .and(warp::ext::optional::<PeerAddr>())
        .map(|method, cookie, origin, host, site, peer| Parts {
            method,
            cookie,
            origin,
            host,
            site,
            peer,
        })
}

/// The three routes.
pub fn routes(state: &WebState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = {
        let s = state.clone();
        warp::any().map(move || s.clone())
    };
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(parts())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(crate::access::auth::json_body())
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(login);
    let logout = warp::path!("api" / "logout")
        .and(warp::post())
        .and(parts())
        .and(with_state.clone())
        .then(logout);
    let session = warp::path!("api" / "session")
        .and(warp::get())
        .and(parts())
        .and(crate::access::auth::presented_token())
        .and(with_state)
        .then(session);
    login.or(logout).unify().or(session).unify()
}

/// The cookie that carries `value` (or, empty with `Max-Age=0`, ends one).
fn cookie(value: &str, max_age: Duration, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .ok()
}

/// What a principal may see, for the page: its user, role and cameras (`null`: all).
fn described(p: &Principal, login: bool) -> serde_json::Value {
    let (who, user) = match &p.who {
        Who::Anonymous => ("anonymous", None),
        Who::Token => ("token", None),
        Who::User(name) => ("user", Some(name.to_string())),
    };
    let cameras = match &p.scope {
        Scope::All => None,
        Scope::Only(ids) => {
            let mut v: Vec<&String> = ids.iter().collect();
            v.sort();
            Some(v.into_iter().cloned().collect::<Vec<_>>())
        }
    };
    json!({"who": who, "user": user, "role": p.role.name(), "cameras": cameras, "login": login})
}

async fn login(parts: Parts, body: Bytes, s: WebState) -> Response {
    let guard = &s.guard;
    let asking = parts.asking();
    if let Err(r) = guard.same_site(&asking) {
        return ApiError::from(r).into_response();
    }
    let req: LoginReq = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "expected {\"user\": \"...\", \"password\": \"...\"}",
            )
            .into_response()
        }
    };
    let peer = asking.peer;
    let addr = peer.map(|p| p.ip());
    if let Some(wait) = guard.throttle().wait(&req.user, addr, Instant::now()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        audit::login_throttled(&req.user, peer, secs);
        crate::obs::metrics::login("throttled");
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins: try again in {secs} s"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(HASHING_WAIT, HASHING.acquire()).await else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many logins at once: try again",
        )
        .into_response();
    };
    let users = guard.users();
    let (name, password) = (req.user.clone(), req.password);
    let found = tokio::task::spawn_blocking(move || users.verify(&name, &password))
        .await
        .ok()
        .flatten();
    let Some(user) = found else {
        guard.throttle().fail(&req.user, addr, Instant::now());
        audit::login_failed(&req.user, peer);
        crate::obs::metrics::login("failed");
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_login",
            "wrong user name or password",
        )
        .into_response();
    };
    guard.throttle().succeed(&req.user);
    let sessions = guard.sessions();
    let Some(value) = sessions.begin(&user, SystemTime::now()) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no session could be made",
        )
        .into_response();
    };
    // Known to every node of a cluster before the browser holds the cookie.
    sessions.store_shared(&value).await;
    audit::login(&user.name, peer);
    crate::obs::metrics::login("ok");
    let principal = guard.principal_of_user(&user, None, peer);
    let mut r = warp::reply::json(&described(&principal, true)).into_response();
    if let Some(c) = cookie(&value, sessions.max_age(), secure(&s)) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// Whether camwall serves HTTPS itself (the cookie is then `Secure`).
fn secure(s: &WebState) -> bool {
    s.hub.server_config().tls.is_some()
}

async fn logout(parts: Parts, s: WebState) -> Response {
    let asking = parts.asking();
    if let Err(r) = s.guard.same_site(&asking) {
        return ApiError::from(r).into_response();
    }
    let ended = match parts.cookie.as_deref() {
        Some(c) => s.guard.sessions().end(c),
        None => None,
    };
    if let Some(user) = &ended {
        audit::logout(user, asking.peer);
    }
    let mut r = warp::reply::json(&json!({"logged_out": ended})).into_response();
    if let Some(c) = cookie("", Duration::ZERO, secure(&s)) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

async fn session(parts: Parts, token: Option<String>, s: WebState) -> Response {
    let asking = Asking {
        token: token.as_deref(),
        ..parts.asking()
    };
    let login = !s.guard.users().is_empty();
    let mut who = s.guard.who_asks(&asking);
    // A cluster's session may have begun on another node.
    if let (None, Some(cookie)) = (&who, &parts.cookie) {
        if s.guard.sessions().fetch(cookie, SystemTime::now()).await {
            who = s.guard.who_asks(&asking);
        }
    }
    match who {
        Some(p) => warp::reply::json(&described(&p, login)).into_response(),
        None => {
            let mut r = ApiError::from(crate::access::guard::Refused::Unauthorized).into_response();
            // The page reads where to go: the login page when users are configured.
            if login {
                r.headers_mut()
                    .insert("x-camwall-login", HeaderValue::from_static("/login"));
            }
            r
        }
    }
}
