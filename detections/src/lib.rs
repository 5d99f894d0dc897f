//! kubetrail-detections: rules as code over the lake, and the alerts they raise.
//!
//! ```text
//! rules/<area>/<id>.yaml ─► RulePack (parsed, checked; bad files reported, not fatal)
//!                            │
//! lake ─► LakeSession::open_window (tables show only the window; *_history before it)
//! watchlists (registries, deployers, indicators) ─► functions the rules call
//!                            └─► engine: SQL per rule ─► group by entity, threshold ─► Alert (stable id)
//!                                   one per fact, updated while it goes on (or per bucket)
//!                                                     └─► alerts table (merged by id) and sinks
//! ```

pub mod alerts;
pub mod catalog;
pub mod coverage;
pub mod engine;
pub mod pack;
pub mod rule;
pub mod schedule;
pub mod sigma;
pub mod sinks;
pub mod testing;
pub mod watchlists;

pub use alerts::{alerts_batch, write_alerts, AlertChanges};
pub use engine::{run_rules, Grouping, RuleOutcome};
pub use pack::RulePack;
pub use rule::{AuditLevel, Rule, RuleProblem, Severity};
pub use testing::{run_tests, EventLoader, TestResult};
pub use watchlists::Watchlists;
