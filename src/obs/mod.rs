//! Observability: logging setup, metrics instruments, and credential redaction for anything
//! that leaves the process. Leaves of the module tree: nothing here reads cameras, clients or
//! routes; the rest of camwall calls in.

pub mod logging;
pub mod metrics;
pub mod pollers;
pub mod redact;
