//! Access: who may do what (tokens, origins, CSRF, the `Host` a request names), who a client is behind a proxy, and how
//! many may at once (client caps, connections per address). Knows nothing of cameras or media;
//! the web layer asks it before serving.

pub mod auth;
pub mod host;
pub mod limits;
pub mod proxy;
