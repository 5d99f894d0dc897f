//! kubetrail-detections: rules as code over the lake, and the alerts they raise.
//!
//! ```text
//! rules/<area>/<id>.yaml ─► RulePack (parsed, checked; bad files reported, not fatal)
//!                            │
//! lake ─► LakeSession::open_window (tables show only the window; *_history before it)
//!                            └─► engine: SQL per rule ─► group by entity, threshold, bucket ─► Alert (stable id)
//!                                                                          └─► alerts table (no duplicates)
//! ```

pub mod alerts;
pub mod engine;
pub mod pack;
pub mod rule;
pub mod schedule;
pub mod sinks;
pub mod testing;

pub use alerts::{alerts_batch, write_alerts};
pub use engine::{run_rules, set_allowed_registries, RuleOutcome};
pub use pack::RulePack;
pub use rule::{Rule, RuleProblem, Severity};
pub use testing::{run_tests, TestResult};
