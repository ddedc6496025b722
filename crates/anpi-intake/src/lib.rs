//! Intake and rules (DESIGN.md §1–2): JMA telegrams come in from the Atom feed poller, the push
//! endpoint or a replay, all through [`Intake::accept`]; each is stored, normalised into a hazard
//! and checked against every tenant's rules, which decide what to send and record why.

pub mod feed;
pub mod intake;
pub mod poller;
pub mod rules;

pub use intake::{Accepted, Intake, IntakeError, Source, StoredArea};
pub use rules::{Reason, Rule, RuleKind};
