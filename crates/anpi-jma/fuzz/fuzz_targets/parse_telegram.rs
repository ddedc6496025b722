//! parse_telegram on arbitrary bytes: must return Ok or Err, never panic, overflow or hang; a
//! telegram it returns must satisfy the normalisation invariants in `../invariants.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    invariants::parse_and_check(data);
});
