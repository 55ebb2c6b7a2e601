//! Camera leases: which cameras this node should claim, refresh or release each heartbeat.
//! Pure planning here; `cluster` carries the plan out against the KV bucket.
//!
//! A lease is a key per camera in a bucket whose entries expire (`create` claims it, `update`
//! with the held revision refreshes it, delete releases it), so two nodes never ingest one
//! camera at once even while their views of the membership differ: the second `create` fails.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::membership::Beat;
use super::owner::{owner, Candidate};

/// The leases' bucket.
pub const LEASES_BUCKET: &str = "camwall_leases";
/// How long a lease outlives its owner's last refresh.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// What to do with one camera's lease this heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Held and still ours: refresh it with its revision.
    Refresh { camera: String, revision: u64 },
    /// Ours by rendezvous but not held: try to claim it.
    Claim { camera: String },
    /// Held but rendezvous moved it (or it was removed): give it up.
    Release { camera: String, revision: u64 },
}

/// The plan for this heartbeat. `cameras`: every camera id in the catalog; `nodes`: the live
/// nodes (this one included once its heartbeat is in); `held`: our leases with their
/// revisions; `may_claim`: false until this node has seen the membership settle (a node that
/// just (re)connected sees few others and would claim far too much).
pub fn plan(
    me: &str,
    cameras: &[String],
    nodes: &BTreeMap<String, Beat>,
    held: &HashMap<String, u64>,
    may_claim: bool,
) -> Vec<Step> {
    let candidates: Vec<Candidate<'_>> = nodes
        .values()
        .map(|b| Candidate {
            node: &b.node,
            weight: b.weight,
        })
        .collect();
    let mut steps = Vec::new();
    for cam in cameras {
        let ours = owner(cam, &candidates) == Some(me);
        match (held.get(cam), ours) {
            (Some(&revision), true) => steps.push(Step::Refresh {
                camera: cam.clone(),
                revision,
            }),
            (Some(&revision), false) => steps.push(Step::Release {
                camera: cam.clone(),
                revision,
            }),
            (None, true) if may_claim => steps.push(Step::Claim {
                camera: cam.clone(),
            }),
            (None, _) => {}
        }
    }
    // Leases of cameras no longer in the catalog.
    let mut gone: Vec<_> = held
        .iter()
        .filter(|(c, _)| !cameras.contains(c))
        .map(|(c, r)| Step::Release {
            camera: c.clone(),
            revision: *r,
        })
        .collect();
    gone.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    steps.extend(gone);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(n: &str) -> (String, Beat) {
        (
            n.to_string(),
            Beat {
                node: n.into(),
                weight: 1.0,
                cameras: Default::default(),
                pictures: Default::default(),
                subs: Default::default(),
                viewers: 0,
                cpu_percent: 0.0,
            },
        )
    }

    #[test]
    fn claims_refreshes_and_releases_by_rendezvous() {
        let cams: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
        let alone: BTreeMap<_, _> = [beat("a")].into_iter().collect();
        // Alone and settled: claims everything.
        let p = plan("a", &cams, &alone, &HashMap::new(), true);
        assert_eq!(p.len(), 30);
        assert!(p.iter().all(|s| matches!(s, Step::Claim { .. })));
        // Not settled yet: claims nothing.
        assert!(plan("a", &cams, &alone, &HashMap::new(), false).is_empty());
        // b joins: a keeps refreshing what stays its own and releases the rest.
        let held: HashMap<String, u64> = cams.iter().map(|c| (c.clone(), 7)).collect();
        let two: BTreeMap<_, _> = [beat("a"), beat("b")].into_iter().collect();
        let p = plan("a", &cams, &two, &held, true);
        let released = p
            .iter()
            .filter(|s| matches!(s, Step::Release { revision: 7, .. }))
            .count();
        let refreshed = p
            .iter()
            .filter(|s| matches!(s, Step::Refresh { revision: 7, .. }))
            .count();
        assert_eq!(released + refreshed, 30);
        assert!(released > 5 && refreshed > 5, "{released} {refreshed}");
        // b claims exactly what a released.
        let pb = plan("b", &cams, &two, &HashMap::new(), true);
        assert_eq!(pb.len(), released);
        // A removed camera's lease goes.
        let p = plan("a", &cams[..29], &alone, &held, true);
        assert!(p.contains(&Step::Release {
            camera: "c29".into(),
            revision: 7
        }));
    }
}
