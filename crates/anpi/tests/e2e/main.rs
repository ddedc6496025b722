//! End-to-end tests: the real `anpi` binary driven over HTTP, with real peers (SMTP sink,
//! PostgreSQL, headless Chromium). Helpers live in `support/`.

// Test code: a failed step should stop with its message, and it reads the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

mod support;

mod access;
mod bounces;
mod browser;
mod browser_mfa;
mod common;
mod crash;
mod demo;
mod dkim;
mod docs;
mod encryption;
mod faults;
mod flow;
mod headers;
mod infra;
mod isolation;
mod jma;
mod labels;
mod links;
mod live;
mod mtls;
mod network;
mod nodes;
mod relays;
mod reminders;
mod tls;
