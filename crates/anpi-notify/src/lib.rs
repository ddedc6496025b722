//! Delivery: outbox workers and channels. SMTP through lettre, or an in-memory mail catcher
//! for the demo.

mod bounces;
mod compose;
mod dkim;
mod relay;
mod worker;

pub use bounces::{ensure_maildir, failures as bounce_failures, BounceReader, Failure};
pub use compose::{compose, Composed};
pub use dkim::{from_private as dkim_key_from_private, generate as generate_dkim_key, DkimSigner};
pub use relay::{Relay, Relays, SendError};
pub use worker::{Caught, Channel, MailCatcher, Worker, WorkerConfig};
