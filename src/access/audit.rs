//! The audit log: one line (target `camwall::audit`) for every login, failed login, refused
//! attempt, logout and change, saying who, what and from where. Never a password, token or
//! cookie: names typed at the login are shown quoted and cut, since a password typed into the
//! name field would otherwise be logged.

use std::net::SocketAddr;

use tracing::{info, warn};

use super::guard::Principal;

/// A name as typed: at most 64 characters, quoted with escapes.
fn typed(name: &str) -> String {
    format!("{:?}", name.chars().take(64).collect::<String>())
}

pub fn login(user: &str, from: Option<SocketAddr>) {
    info!(target: "camwall::audit", user, from = ?from, "login");
}

pub fn login_failed(name: &str, from: Option<SocketAddr>) {
    warn!(target: "camwall::audit", user = %typed(name), from = ?from, "login failed: wrong user name or password");
}

pub fn login_throttled(name: &str, from: Option<SocketAddr>, retry_after_s: u64) {
    warn!(target: "camwall::audit", user = %typed(name), from = ?from, retry_after_s, "login refused: too many failures");
}

pub fn logout(user: &str, from: Option<SocketAddr>) {
    info!(target: "camwall::audit", user, from = ?from, "logout");
}

/// A change asked by `who` (the guard let it through; its answer is in the request log).
pub fn change(who: &Principal, method: &str, path: &str) {
    info!(target: "camwall::audit", who = who.who.label(), role = who.role.name(), from = ?who.peer, method, path, "change");
}
