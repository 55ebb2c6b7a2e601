//! Access: who may do what (tokens, origins, CSRF, the `Host` a request names), who a client
//! is behind a proxy, and how many may at once (client caps, connections per address). `guard`
//! is the one filter every route that acts for a client goes through; it yields the
//! `Principal` handlers act for. `host` refuses names of other sites (DNS rebinding) in front
//! of every route. Knows nothing of cameras or media; the web layer asks it before serving.

pub mod auth;
pub mod guard;
pub mod host;
pub mod limits;
pub mod proxy;
