//! Test-support library for anpi's integration tests (`tests/e2e.rs` declares `mod support;`).
//!
//! Real peers, no mocks:
//! - [`db`]: the storage engines under test ([`Engine`], [`engines`], [`fresh_database`]);
//! - [`smtp`]: a real SMTP server process (aiosmtpd) writing a Maildir ([`SmtpSink`], [`Mail`]);
//! - [`server`]: the `anpi` binary under test ([`Server`], [`ServerBuilder`], [`run_cli`]);
//! - [`http`]: a cookie- and CSRF-aware HTTP client ([`Client`], [`Resp`], [`extract`]);
//! - [`webdriver`]: a minimal W3C WebDriver client driving headless Chromium ([`WebDriver`]).
//!
//! Environment (set by `scripts/test.sh`):
//! - `ANPI_TEST_DATABASE_URL`: PostgreSQL URL of a superuser; enables the Postgres engine.
//! - `ANPI_TEST_AIOSMTPD_PYTHON`: python with aiosmtpd (default `/usr/bin/python3`, then `python3`).
//! - `ANPI_TEST_CHROMEDRIVER`, `ANPI_TEST_CHROMIUM`: enable browser tests.
//! - `ANPI_SHARED_DIR`: the project's shared directory (JMA samples, …).
//! - `CI`: when set, a missing peer (PostgreSQL, chromedriver) is an error, not a skip.
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod http;
pub mod pgcluster;
pub mod server;
pub mod smtp;
pub mod util;
pub mod webdriver;

pub use db::{engines, fresh_database, superuser_url, DbGuard, Engine};
pub use http::{extract, Client, Resp};
pub use server::{run_cli, Server, ServerBuilder};
pub use smtp::{Mail, SmtpSink};
pub use util::{free_port, in_ci, repo_root, shared_dir, test_artifacts_dir};
pub use webdriver::WebDriver;
