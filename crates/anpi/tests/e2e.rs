//! End-to-end tests: the real `anpi` binary driven over HTTP, with real peers (SMTP sink,
//! PostgreSQL, headless Chromium). Helpers live in `tests/support/`.

// Test code: a failed step should stop with its message, and it reads the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

mod support;

#[path = "e2e/access.rs"]
mod access;
#[path = "e2e/bounces.rs"]
mod bounces;
#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/browser_mfa.rs"]
mod browser_mfa;
#[path = "e2e/common.rs"]
mod common;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/demo.rs"]
mod demo;
#[path = "e2e/dkim.rs"]
mod dkim;
#[path = "e2e/docs.rs"]
mod docs;
#[path = "e2e/encryption.rs"]
mod encryption;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/flow.rs"]
mod flow;
#[path = "e2e/headers.rs"]
mod headers;
#[path = "e2e/infra.rs"]
mod infra;
#[path = "e2e/isolation.rs"]
mod isolation;
#[path = "e2e/jma.rs"]
mod jma;
#[path = "e2e/labels.rs"]
mod labels;
#[path = "e2e/links.rs"]
mod links;
#[path = "e2e/live.rs"]
mod live;
#[path = "e2e/mtls.rs"]
mod mtls;
#[path = "e2e/network.rs"]
mod network;
#[path = "e2e/nodes.rs"]
mod nodes;
#[path = "e2e/relays.rs"]
mod relays;
#[path = "e2e/reminders.rs"]
mod reminders;
#[path = "e2e/tls.rs"]
mod tls;
