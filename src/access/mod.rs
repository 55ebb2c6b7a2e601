//! Access: who may do what (tokens, users and their sessions, login throttling, origins, CSRF,
//! the `Host` a request names), who a client is behind a proxy, and how many may at once
//! (client caps, connections per address). `guard` is the one filter every route that acts for
//! a client goes through; it yields the `Principal` handlers act for, with its camera scope.
//! `host` refuses names of other sites (DNS rebinding) in front of every route. `kept` saves a
//! lone node's sessions across restarts. Knows nothing
//! of cameras or media beyond their ids; the web layer asks it before serving.

pub mod audit;
pub mod auth;
pub mod guard;
pub mod host;
pub mod kept;
pub mod limits;
pub mod proxy;
pub mod sessions;
pub mod throttle;
pub mod users;
