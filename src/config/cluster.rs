//! `server.cluster`: the optional NATS cluster section (types, defaults, validation).
//!
//! Kept beside the other config sections so the cluster's settings stay in one place; `config` validates them
//! with the rest of the file and `cluster` reads them. Nothing here connects anywhere.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `server.cluster` section. Absent: camwall runs alone, exactly as without this section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URL(s), comma-separated: `nats://host:4222`, `tls://host:4222`. User info in
    /// the URL (`nats://user:pass@host`) is used to log in and never logged. Required.
    pub nats: String,
    /// This node's name, unique in the cluster: 1 to 64 of `A-Z a-z 0-9 _ -`. Required.
    pub node: String,
    /// A NATS credentials file (`.creds`: a JWT and its NKey seed). Relative paths are taken
    /// from the config file's directory. Default: none.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// PEM file of the certificate authority that signed the NATS servers' certificates, for
    /// `tls://` URLs with a private CA (instead of the system's roots). Relative paths are
    /// taken from the config file's directory. Default: none.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// This node's share of the cameras relative to the others (rendezvous hashing weight),
    /// 0 < x ≤ 1000. Default 1.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Copies JetStream keeps of camwall's buckets when a node creates them (1 to 5; 3 on a
    /// three-server NATS cluster, so the camera list and leases survive a NATS server's loss).
    /// Buckets that exist keep theirs. Default 1.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
}

fn default_weight() -> f64 {
    1.0
}

fn default_replicas() -> usize {
    1
}

/// Checks the section; returns (field under `server.`, message) pairs.
pub fn validate_cluster(c: &ClusterConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let urls: Vec<&str> = c.nats.split(',').map(str::trim).collect();
    if c.nats.trim().is_empty() {
        out.push((
            "cluster.nats",
            "needs a NATS URL, e.g. nats://127.0.0.1:4222".into(),
        ));
    } else if let Some(bad) = urls.iter().find(|u| {
        !["nats://", "tls://", "ws://", "wss://"]
            .iter()
            .any(|s| u.starts_with(s))
            || u.chars().any(|ch| ch.is_control() || ch.is_whitespace())
    }) {
        out.push((
            "cluster.nats",
            format!(
                "{} is not a NATS URL (nats://host:4222 or tls://host:4222)",
                crate::obs::redact::redact_url(bad)
            ),
        ));
    }
    if !crate::config::is_safe_id(&c.node) {
        out.push((
            "cluster.node",
            format!(
                "{:?} is not a node name: use 1 to 64 of A-Z a-z 0-9 _ -, starting with a \
                 letter or digit",
                c.node
            ),
        ));
    }
    if !(c.weight > 0.0 && c.weight <= 1000.0) {
        out.push(("cluster.weight", "must be a number in 0 < x <= 1000".into()));
    }
    if !(1..=5).contains(&c.replicas) {
        out.push(("cluster.replicas", "must be an integer from 1 to 5".into()));
    }
    if c.credentials
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        out.push(("cluster.credentials", "must not be empty when given".into()));
    }
    if c.tls_ca.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        out.push(("cluster.tls_ca", "must not be empty when given".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_section_is_checked_with_fields_named() {
        let ok = r#"{"server":{"cluster":{"nats":"nats://127.0.0.1:4222","node":"n1"}}}"#;
        let c = crate::config::parse(ok).unwrap().server.cluster.unwrap();
        assert_eq!((c.weight, c.credentials), (1.0, None));
        assert_eq!(c.replicas, 1);
        let bad = r#"{"server":{"cluster":{"nats":"http://u:secret@h","node":"a b","weight":0,"replicas":7}}}"#;
        let issues = crate::config::parse(bad).unwrap_err();
        let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "server.cluster.nats",
                "server.cluster.node",
                "server.cluster.weight",
                "server.cluster.replicas"
            ]
        );
        assert!(
            issues.iter().all(|i| !i.message.contains("secret")),
            "{issues:?}"
        );
        // Unknown fields are errors, with their position.
        let typo = "{\"server\":{\"cluster\":{\"nats\":\"nats://h\",\"node\":\"a\",\"wieght\":2}}}";
        let issues = crate::config::parse(typo).unwrap_err();
        assert!(issues[0].field.starts_with("server.cluster"), "{issues:?}");
        assert!(issues[0].position.is_some());
    }
}
