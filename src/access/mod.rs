//! Access: who may do what (tokens, origins, CSRF), who a client is behind a proxy, and how
//! many may at once (client caps, connections per address). `guard` is the one filter every
//! route goes through; it yields the `Principal` handlers act for. Knows nothing of cameras or media;
//! the web layer asks it before serving.

pub mod auth;
pub mod guard;
pub mod limits;
pub mod proxy;
