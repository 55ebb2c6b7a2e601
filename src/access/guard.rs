//! The one access guard: every route asks it who is asking and whether they may, and gets a
//! [`Principal`] back (or a [`Refused`], which `web::error` turns into an answer). It checks
//! the token or the session cookie, their role and scope (the cameras they may see), where a
//! browser request comes from (cross-site changes, sockets opened by other sites' pages), and
//! admits streaming clients under the caps. Handlers receive the principal; the WebSocket
//! session keeps it. It also holds the users, their sessions and the login throttle, which the
//! login routes use.
//!
//! Why one guard: routes chained their own token, origin and cap checks, so nothing knew who
//! was asking. A user with a camera scope (or any new rule) is one change here.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use warp::http::Method;
use warp::{Filter, Rejection};

use super::auth::{cross_site_refused, origin_allowed, presented_token, Auth, Grant, Role};
use super::limits::{ClientKind, ClientLimits, ClientSlot};
use super::sessions::{Sessions, COOKIE};
use super::throttle::Throttle;
use super::users::{User, Users};

/// The client's address, as the accept loop found it (behind trusted proxies: the client's).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What a route does, which decides what the guard checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading: pictures, streams, status, lists. Any viewer.
    View,
    /// Changing state (cameras, views, initialize, probes): an admin, and never from
    /// another site's page.
    Change,
    /// Opening the live wall's WebSocket: a viewer, from camwall's own pages or an allowed
    /// origin (another site's page must not watch with this browser's access).
    Socket,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// No token or user is configured: camwall is open (the loopback default).
    Anonymous,
    /// A configured token.
    Token,
    /// A user, by their session cookie.
    User(Arc<str>),
}

impl Who {
    /// For logs: the user's name, or what kind of asker it was (never a secret).
    pub fn label(&self) -> &str {
        match self {
            Who::Anonymous => "anonymous",
            Who::Token => "token",
            Who::User(name) => name,
        }
    }
}

/// Which cameras a principal may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// These camera ids only (a view's cameras included, as they were at the request).
    Only(Arc<HashSet<String>>),
}

impl Scope {
    pub fn allows(&self, camera: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(ids) => ids.contains(camera),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

/// The camera ids of a view (`None`: no such view), for scopes that name views.
pub type ViewCameras = Arc<dyn Fn(&str) -> Option<Vec<String>> + Send + Sync>;

/// Who asks, with what role and scope, from where.
#[derive(Clone)]
pub struct Principal {
    pub who: Who,
    pub role: Role,
    pub scope: Scope,
    pub peer: Option<SocketAddr>,
    limits: Arc<ClientLimits>,
    /// A user's session, for connections that outlive the request (a WebSocket): they end
    /// with it.
    session: Option<SessionCheck>,
}

/// Where a principal's session can be looked up again.
#[derive(Clone)]
struct SessionCheck {
    key: [u8; 32],
    sessions: Arc<Sessions>,
    users: Arc<RwLock<Arc<Users>>>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("who", &self.who)
            .field("role", &self.role)
            .field("scope", &self.scope)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Principal {
    /// Anyone, with every right and room under the caps: for unit tests of what sits behind
    /// the guard.
    #[cfg(test)]
    pub(crate) fn trusted() -> Self {
        Self {
            who: Who::Anonymous,
            role: Role::Admin,
            scope: Scope::All,
            peer: None,
            limits: ClientLimits::new(usize::MAX, usize::MAX, usize::MAX),
            session: None,
        }
    }

    /// Whether the session this principal came with still stands (logout, idle time, age, a
    /// changed or removed user end it); always, for tokens and open access. Counts as a use.
    pub fn still_valid(&self) -> bool {
        let Some(s) = &self.session else {
            return true;
        };
        let users = s
            .users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        s.sessions
            .user_by_key(&s.key, &users, SystemTime::now())
            .is_some()
    }

    /// A place under the caps for a client that stays (a stream, a socket, a long-poll),
    /// given back when the slot drops.
    /// The slot carries the principal's session: a stream checks it as it goes
    /// ([`ClientSlot::session_stands`]) and ends with it.
    pub fn admit(&self, kind: ClientKind) -> Result<ClientSlot, Refused> {
        let slot = self
            .limits
            .acquire(kind, self.peer)
            .ok_or(Refused::TooManyClients)?;
        Ok(match &self.session {
            Some(_) => {
                let me = self.clone();
                slot.with_session(Arc::new(move || me.still_valid()))
            }
            None => slot,
        })
    }
}

/// Why the guard said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No token, or an unknown one: 401.
    Unauthorized,
    /// A viewer token where an admin's is needed: 403.
    Forbidden,
    /// A principal limited to some cameras where every camera would show (`/metrics`): 403.
    Scoped,
    /// A change sent by another site's page: 403 `bad_origin`.
    CrossSite,
    /// A WebSocket opened by another site's page: 403 `bad_origin`.
    SocketOrigin,
    /// Over a client cap: 503 `too_many_clients`.
    TooManyClients,
}

impl warp::reject::Reject for Refused {}

/// What the guard reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    pub method: &'a Method,
    pub token: Option<&'a str>,
    /// The session cookie's value.
    pub session: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub host: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    pub peer: Option<SocketAddr>,
}

/// The rules and what they need: tokens, users and their sessions, allowed origins, client
/// caps.
pub struct Guard {
    auth: Arc<Auth>,
    users: Arc<RwLock<Arc<Users>>>,
    sessions: Arc<Sessions>,
    throttle: Throttle,
    views: ViewCameras,
    allowed_origins: Arc<Vec<String>>,
    limits: Arc<ClientLimits>,
}

impl Guard {
    /// A guard with tokens only (no users), for unit tests.
    #[cfg(test)]
    pub fn new(
        auth: Arc<Auth>,
        allowed_origins: Arc<Vec<String>>,
        limits: Arc<ClientLimits>,
    ) -> Arc<Self> {
        Self::with_users(
            auth,
            Users::default(),
            Sessions::new(std::time::Duration::MAX, std::time::Duration::MAX),
            Arc::new(|_: &str| None),
            allowed_origins,
            limits,
        )
    }

    pub fn with_users(
        auth: Arc<Auth>,
        users: Users,
        sessions: Sessions,
        views: ViewCameras,
        allowed_origins: Arc<Vec<String>>,
        limits: Arc<ClientLimits>,
    ) -> Arc<Self> {
        Arc::new(Self {
            auth,
            users: Arc::new(RwLock::new(Arc::new(users))),
            sessions: Arc::new(sessions),
            throttle: Throttle::default(),
            views,
            allowed_origins,
            limits,
        })
    }

    /// The users now.
    pub fn users(&self) -> Arc<Users> {
        self.users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Users read again (a reload): sessions of users changed or gone end at their next use.
    pub fn set_users(&self, users: Users) {
        *self
            .users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(users);
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn limits(&self) -> &Arc<ClientLimits> {
        &self.limits
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Whether nothing is configured to tell askers apart (no token, no user): open.
    pub fn is_open(&self) -> bool {
        self.auth.is_open() && self.users().is_empty()
    }

    /// Whether a change (a login too) from this browser request may proceed: not sent by
    /// another site's page (a forced login would make the victim act as the attacker's user).
    pub fn same_site(&self, asking: &Asking<'_>) -> Result<(), Refused> {
        if cross_site_refused(
            asking.method,
            asking.origin,
            asking.host,
            asking.sec_fetch_site,
            &self.allowed_origins,
        ) {
            return Err(Refused::CrossSite);
        }
        Ok(())
    }

    /// The cameras `grant` may see, its views looked up now.
    fn scope_of(&self, grant: &Grant) -> Scope {
        let Some(cameras) = &grant.scope.cameras else {
            return Scope::All;
        };
        let mut ids: HashSet<String> = cameras.iter().cloned().collect();
        for v in &grant.scope.views {
            ids.extend((self.views)(v).into_iter().flatten());
        }
        Scope::Only(Arc::new(ids))
    }

    /// The principal of `user`, by the session `cookie` it came with (none: for the login's
    /// answer).
    pub fn principal_of_user(
        &self,
        user: &User,
        cookie: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Principal {
        Principal {
            who: Who::User(Arc::from(user.name.as_str())),
            role: user.grant.role,
            scope: self.scope_of(&user.grant),
            peer,
            limits: self.limits.clone(),
            session: cookie.map(|c| SessionCheck {
                key: super::sessions::key_of(c),
                sessions: self.sessions.clone(),
                users: self.users.clone(),
            }),
        }
    }

    /// Whether `asking` may do `access`, and as whom. The order of the checks keeps the
    /// answers camwall always gave: a cross-site change is refused before its token is looked
    /// at; a socket's token is checked before its origin.
    pub fn check(&self, access: Access, asking: &Asking<'_>) -> Result<Principal, Refused> {
        match access {
            Access::View => self.principal(asking, Role::Viewer),
            Access::Change => {
                self.same_site(asking)?;
                self.principal(asking, Role::Admin)
            }
            Access::Socket => {
                let p = self.principal(asking, Role::Viewer)?;
                if !origin_allowed(asking.origin, asking.host, &self.allowed_origins) {
                    return Err(Refused::SocketOrigin);
                }
                Ok(p)
            }
        }
    }

    fn principal(&self, asking: &Asking<'_>, need: Role) -> Result<Principal, Refused> {
        let p = self.who_asks(asking).ok_or(Refused::Unauthorized)?;
        if p.role < need {
            return Err(Refused::Forbidden);
        }
        Ok(p)
    }

    /// Who `asking` is: a token's holder (a token names a script, checked first), else a
    /// session's user, else anyone when camwall is open; `None`: nobody camwall knows.
    pub fn who_asks(&self, asking: &Asking<'_>) -> Option<Principal> {
        let principal = |who, role, scope| Principal {
            who,
            role,
            scope,
            peer: asking.peer,
            limits: self.limits.clone(),
            session: None,
        };
        if let Some(grant) = asking.token.and_then(|t| self.auth.grant_of(t)) {
            return Some(principal(Who::Token, grant.role, self.scope_of(grant)));
        }
        let users = self.users();
        if let Some(cookie) = asking.session {
            if let Some(user) = self.sessions.user(cookie, &users, SystemTime::now()) {
                return Some(self.principal_of_user(&user, Some(cookie), asking.peer));
            }
        }
        (self.auth.is_open() && users.is_empty())
            .then(|| principal(Who::Anonymous, Role::Admin, Scope::All))
    }
}

/// The guard as a warp filter: passes with the [`Principal`], or rejects with [`Refused`].
pub fn guard(
    guard: Arc<Guard>,
    access: Access,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::method()
        .and(presented_token())
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .and(warp::ext::optional::<PeerAddr>())
        .and_then(
            move |method: Method,
                  token: Option<String>,
                  session: Option<String>,
                  origin: Option<String>,
                  host: Option<String>,
                  site: Option<String>,
                  peer: Option<PeerAddr>| {
                let guard = guard.clone();
                async move {
                    let asking = Asking {
                        method: &method,
                        token: token.as_deref(),
                        session: session.as_deref(),
                        origin: origin.as_deref(),
                        host: host.as_deref(),
                        sec_fetch_site: site.as_deref(),
                        peer: peer.map(|p| p.0),
                    };
                    let mut r = guard.check(access, &asking);
                    // A cluster's session may have begun on another node: looked up there
                    // once, then held here.
                    if let (Err(Refused::Unauthorized), Some(cookie)) = (&r, &session) {
                        if guard.sessions.fetch(cookie, SystemTime::now()).await {
                            r = guard.check(access, &asking);
                        }
                    }
                    r.map_err(warp::reject::custom)
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard_with(tokens: bool, max_ws: usize) -> Arc<Guard> {
        let auth = if tokens {
            let plain = |t: &str| crate::config::auth::TokenEntry::Plain(t.into());
            Auth::new(&[plain("view")], &[plain("boss")], None)
        } else {
            Auth::default()
        };
        Guard::new(
            Arc::new(auth),
            Arc::new(vec!["https://wall.example".into()]),
            ClientLimits::new(max_ws, 4, 8),
        )
    }

    fn asking<'a>(method: &'a Method, token: Option<&'a str>) -> Asking<'a> {
        Asking {
            method,
            token,
            session: None,
            origin: None,
            host: Some("cam.lan:8000"),
            sec_fetch_site: None,
            peer: "10.0.0.9:5000".parse().ok(),
        }
    }

    fn outcome(g: &Guard, access: Access, a: &Asking<'_>) -> Result<(Who, Role), Refused> {
        g.check(access, a).map(|p| (p.who, p.role))
    }

    #[test]
    fn each_route_kind_for_anonymous_viewer_and_admin() {
        let (get, post) = (Method::GET, Method::POST);
        let g = guard_with(true, 8);
        use Refused::*;
        for (access, method, token, want) in [
            (Access::View, &get, None, Err(Unauthorized)),
            (Access::View, &get, Some("nope"), Err(Unauthorized)),
            (
                Access::View,
                &get,
                Some("view"),
                Ok((Who::Token, Role::Viewer)),
            ),
            (
                Access::View,
                &get,
                Some("boss"),
                Ok((Who::Token, Role::Admin)),
            ),
            (Access::Change, &post, None, Err(Unauthorized)),
            (Access::Change, &post, Some("view"), Err(Forbidden)),
            (
                Access::Change,
                &post,
                Some("boss"),
                Ok((Who::Token, Role::Admin)),
            ),
            (Access::Socket, &get, None, Err(Unauthorized)),
            (
                Access::Socket,
                &get,
                Some("view"),
                Ok((Who::Token, Role::Viewer)),
            ),
        ] {
            let a = asking(method, token);
            assert_eq!(outcome(&g, access, &a), want, "{access:?} {token:?}");
        }
        // No token configured: everyone is an anonymous admin.
        let open = guard_with(false, 8);
        for access in [Access::View, Access::Change, Access::Socket] {
            let a = asking(&post, None);
            assert_eq!(
                outcome(&open, access, &a),
                Ok((Who::Anonymous, Role::Admin))
            );
        }
        let p = open.check(Access::View, &asking(&get, None)).unwrap();
        assert!(p.scope.allows("any-camera"));
        assert_eq!(p.peer, "10.0.0.9:5000".parse().ok());
    }

    #[test]
    fn a_wrong_origin_is_refused_for_changes_and_sockets_only() {
        let g = guard_with(true, 8);
        let (get, post) = (Method::GET, Method::POST);
        let foreign = |m| Asking {
            origin: Some("http://evil.example"),
            ..asking(m, Some("boss"))
        };
        assert_eq!(
            outcome(&g, Access::Change, &foreign(&post)).unwrap_err(),
            Refused::CrossSite
        );
        assert_eq!(
            outcome(&g, Access::Socket, &foreign(&get)).unwrap_err(),
            Refused::SocketOrigin
        );
        assert!(outcome(&g, Access::View, &foreign(&get)).is_ok());
        // A cross-site change is refused before its token is looked at.
        let no_token = Asking {
            origin: Some("http://evil.example"),
            ..asking(&post, None)
        };
        assert_eq!(
            outcome(&g, Access::Change, &no_token).unwrap_err(),
            Refused::CrossSite
        );
        // The browser's own word, and the server's own and allowed origins.
        let fetch_site = Asking {
            sec_fetch_site: Some("cross-site"),
            ..asking(&post, Some("boss"))
        };
        assert_eq!(
            outcome(&g, Access::Change, &fetch_site).unwrap_err(),
            Refused::CrossSite
        );
        for origin in ["http://cam.lan:8000", "https://wall.example"] {
            let own = Asking {
                origin: Some(origin),
                ..asking(&post, Some("boss"))
            };
            assert!(outcome(&g, Access::Change, &own).is_ok(), "{origin}");
            assert!(outcome(&g, Access::Socket, &own).is_ok(), "{origin}");
        }
    }

    #[test]
    fn clients_over_the_cap_are_refused_until_a_place_frees() {
        let g = guard_with(false, 2);
        let p = g
            .check(Access::Socket, &asking(&Method::GET, None))
            .unwrap();
        let a = p.admit(ClientKind::WebSocket).unwrap();
        let _b = p.admit(ClientKind::WebSocket).unwrap();
        assert!(matches!(
            p.admit(ClientKind::WebSocket),
            Err(Refused::TooManyClients)
        ));
        drop(a);
        assert!(p.admit(ClientKind::WebSocket).is_ok());
    }
}
