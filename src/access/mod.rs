//! Access: who may do what (tokens, origins) and how many may at once (client caps). Knows
//! nothing of cameras or media; the web layer asks it before serving.

pub mod auth;
pub mod limits;
