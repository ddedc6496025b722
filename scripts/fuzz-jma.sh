#!/usr/bin/env bash
# scripts/fuzz-jma.sh [SECONDS] — fuzz anpi_jma::parse_telegram with cargo-fuzz (libFuzzer).
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). When either is missing it
# says why and exits 0, so it is safe to call from CI on stable-only machines. The JMA sample
# telegrams (../shared/jma/samples beside the checkout) seed the corpus when present.
set -euo pipefail

SECONDS_TO_RUN="${1:-60}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/crates/anpi-jma/fuzz"
SAMPLES="$ROOT/../shared/jma/samples"

skip() { printf '==> [fuzz-jma] skipped: %s\n' "$*" >&2; exit 0; }

case "$SECONDS_TO_RUN" in ''|*[!0-9]*) printf 'usage: %s [SECONDS]\n' "$0" >&2; exit 2 ;; esac
command -v cargo >/dev/null 2>&1 || skip "cargo not found"
cargo +nightly --version >/dev/null 2>&1 || skip "no nightly toolchain (rustup toolchain install nightly)"
cargo +nightly fuzz --version >/dev/null 2>&1 || skip "cargo-fuzz not installed (cargo install cargo-fuzz)"

cd "$FUZZ_DIR"
corpus=(corpus/parse_telegram)
mkdir -p "${corpus[0]}"
[ -d "$SAMPLES" ] && corpus+=("$SAMPLES")   # read-only seeds; new inputs go to the first dir

printf '==> [fuzz-jma] fuzzing parse_telegram for %ss\n' "$SECONDS_TO_RUN" >&2
exec cargo +nightly fuzz run parse_telegram "${corpus[@]}" -- \
    -max_total_time="$SECONDS_TO_RUN" -max_len=262144 -timeout=10 -rss_limit_mb=2048
