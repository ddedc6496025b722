//! Delivery: outbox workers and channels. SMTP through lettre, or an in-memory mail catcher
//! for the demo.

mod compose;
mod worker;

pub use compose::{compose, Composed};
pub use worker::{Channel, Caught, MailCatcher, Worker, WorkerConfig};
