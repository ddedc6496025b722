#!/usr/bin/env bash
# scripts/fuzz-jma.sh [SECONDS [FUZZER ARGS...]] — fuzz anpi_jma::parse_telegram (parsing and
# normalisation) for SECONDS seconds (default 60); exits non-zero when it finds a failing input.
#
# Modes (ANPI_FUZZ_MODE, default auto):
#   libfuzzer  cargo-fuzz (libFuzzer, coverage-guided) on the nightly toolchain; installs
#              cargo-fuzz (`cargo install cargo-fuzz --locked`, into ~/.cargo/bin) when missing.
#   stable     the stable-Rust mutation fuzzer `crates/anpi-jma/examples/fuzz_stable.rs`.
#   auto       libfuzzer when a nightly toolchain is installed, else stable (also when
#              cargo-fuzz cannot be installed).
# Both check the same invariants (crates/anpi-jma/fuzz/invariants.rs). FUZZER ARGS go to
# libFuzzer (e.g. -jobs=2) or to fuzz_stable (e.g. --seed 0x1234).
#
# Seeds: the JMA sample telegrams ($ANPI_SHARED_DIR/jma/samples, default ../shared beside the
# checkout) and crates/anpi-jma/fuzz/corpus/parse_telegram, where libFuzzer keeps what it finds
# (git-ignored, like fuzz/artifacts/ and fuzz/target/). Failing inputs are written to
# crates/anpi-jma/fuzz/artifacts/parse_telegram/; see docs/operations.md ("Fuzzing") to reproduce.
# Other settings: ANPI_FUZZ_SANITIZER (libfuzzer mode: address (default) or none),
# ANPI_FUZZ_SEED (stable mode RNG seed), CARGO_TARGET_DIR (builds go to $CARGO_TARGET_DIR/fuzz-*).
set -euo pipefail

SECONDS_TO_RUN="${1:-60}"
[ "$#" -eq 0 ] || shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/crates/anpi-jma/fuzz"
SHARED="${ANPI_SHARED_DIR:-$ROOT/../shared}"
SAMPLES="$SHARED/jma/samples"
CORPUS="$FUZZ_DIR/corpus/parse_telegram"
ARTIFACTS="$FUZZ_DIR/artifacts/parse_telegram"
MODE="${ANPI_FUZZ_MODE:-auto}"

log() { printf '==> [fuzz-jma] %s\n' "$*" >&2; }
die() { printf '==> [fuzz-jma] ERROR: %s\n' "$*" >&2; exit 1; }

case "$SECONDS_TO_RUN" in ''|*[!0-9]*) printf 'usage: %s [SECONDS [FUZZER ARGS...]]\n' "$0" >&2; exit 2 ;; esac
case "$MODE" in auto|libfuzzer|stable) ;; *) die "ANPI_FUZZ_MODE must be auto, libfuzzer or stable (got '$MODE')" ;; esac
command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH"
if [ -d "$SAMPLES" ]; then
    log "seeds: JMA samples in $SAMPLES"
else
    [ -z "${CI:-}" ] || die "JMA samples not found at $SAMPLES (required in CI)"
    log "warning: JMA samples not found at $SAMPLES; fuzzing from $CORPUS only"
fi
mkdir -p "$CORPUS" "$ARTIFACTS"
MARKER="$(mktemp)"          # artifacts newer than this are this run's
trap 'rm -f "$MARKER"' EXIT

now() { date +%s; }

# Prints this run's failing inputs and how to reproduce them.
report_failures() {
    local mode="$1" f found=0
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        found=1
        log "failing input: $f ($(wc -c <"$f") bytes)"
        if [ "$(wc -c <"$f")" -le 65536 ]; then
            log "  base64 (decode with: base64 -d > input): $(base64 -w0 "$f")"
        fi
        if [ "$mode" = libfuzzer ]; then
            log "  reproduce: (cd crates/anpi-jma/fuzz && cargo +nightly fuzz run parse_telegram $f)"
        fi
        log "  reproduce: cargo run -p anpi-jma --example fuzz_stable -- --reproduce $f"
    done < <(find "$ARTIFACTS" -type f -newer "$MARKER" 2>/dev/null | sort)
    [ "$found" -eq 1 ] || log "no failing input was saved; see the output above"
}

# ---------------------------------------------------------------------------------------------
# Mode selection
# ---------------------------------------------------------------------------------------------
have_nightly() { cargo +nightly --version >/dev/null 2>&1; }
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$PATH:$cargo_bin" ;; esac

if [ "$MODE" != stable ]; then
    if ! have_nightly; then
        [ "$MODE" = auto ] || die "ANPI_FUZZ_MODE=libfuzzer but no nightly toolchain (rustup toolchain install nightly)"
        log "no nightly toolchain: using the stable fallback fuzzer (not coverage-guided)"
        MODE=stable
    elif ! cargo fuzz --version >/dev/null 2>&1; then
        log "cargo-fuzz not installed: cargo install cargo-fuzz --locked (into $cargo_bin)"
        t0="$(now)"
        if cargo install cargo-fuzz --locked >&2 && cargo fuzz --version >/dev/null 2>&1; then
            log "installed $(cargo fuzz --version) in $(( $(now) - t0 )) s"
        elif [ "$MODE" = auto ]; then
            log "WARNING: installing cargo-fuzz failed after $(( $(now) - t0 )) s: using the stable fallback fuzzer"
            MODE=stable
        else
            die "installing cargo-fuzz failed"
        fi
    fi
    [ "$MODE" = stable ] || MODE=libfuzzer
fi

# ---------------------------------------------------------------------------------------------
# libFuzzer (nightly + cargo-fuzz)
# ---------------------------------------------------------------------------------------------
if [ "$MODE" = libfuzzer ]; then
    SANITIZER="${ANPI_FUZZ_SANITIZER:-address}"
    fuzz_opts=(--sanitizer "$SANITIZER")
    [ -z "${CARGO_TARGET_DIR:-}" ] || fuzz_opts+=(--target-dir "$CARGO_TARGET_DIR/fuzz-libfuzzer")
    cd "$FUZZ_DIR"
    # The fuzz project is its own workspace (its Cargo.lock is not committed): start from the main
    # workspace's lock so that it builds the same versions of jmaxml, quick-xml, chrono, …
    [ -f Cargo.lock ] || cp "$ROOT/Cargo.lock" Cargo.lock
    log "mode: libfuzzer ($(cargo fuzz --version), $(cargo +nightly --version | cut -d' ' -f1-2), sanitizer $SANITIZER)"
    t0="$(now)"
    cargo +nightly fuzz build "${fuzz_opts[@]}" parse_telegram || die "building the fuzz target failed"
    log "built the fuzz target in $(( $(now) - t0 )) s"
    seeds=("$CORPUS")
    [ -d "$SAMPLES" ] && seeds+=("$SAMPLES")   # read-only seeds; new inputs go to the first dir
    log "fuzzing parse_telegram for ${SECONDS_TO_RUN}s (libFuzzer)"
    t0="$(now)"
    set +e
    cargo +nightly fuzz run "${fuzz_opts[@]}" parse_telegram "${seeds[@]}" -- \
        -max_total_time="$SECONDS_TO_RUN" -max_len=262144 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -print_funcs=0 "$@"
    status=$?
    set -e
    if [ "$status" -ne 0 ]; then
        log "FAILED: libFuzzer found a failing input (exit status $status) after $(( $(now) - t0 )) s"
        report_failures libfuzzer
        exit 1
    fi
    log "mode libfuzzer: no failure in $(( $(now) - t0 )) s of fuzzing (corpus: $(find "$CORPUS" -type f | wc -l) inputs)"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Stable fallback: examples/fuzz_stable.rs
# ---------------------------------------------------------------------------------------------
# Optimised, with debug assertions and overflow checks (like cargo-fuzz), in a profile of its
# own so that it does not disturb the dev and release builds.
profile=(--profile fuzz-stable
    --config 'profile.fuzz-stable.inherits="release"'
    --config 'profile.fuzz-stable.debug-assertions=true'
    --config 'profile.fuzz-stable.overflow-checks=true'
    --config 'profile.fuzz-stable.incremental=false')
log "mode: stable (examples/fuzz_stable.rs on $(cargo --version | cut -d' ' -f1-2); mutation-based, not coverage-guided)"
cd "$ROOT"
t0="$(now)"
cargo build "${profile[@]}" -p anpi-jma --example fuzz_stable || die "building fuzz_stable failed"
log "built fuzz_stable in $(( $(now) - t0 )) s"
seeds=()
[ -d "$SAMPLES" ] && seeds+=("$SAMPLES")
[ -z "$(ls -A "$CORPUS" 2>/dev/null)" ] || seeds+=("$CORPUS")
[ "${#seeds[@]}" -gt 0 ] || die "no seed inputs: neither $SAMPLES nor $CORPUS has files"
args=(--seconds "$SECONDS_TO_RUN" --artifacts "$ARTIFACTS")
[ -z "${ANPI_FUZZ_SEED:-}" ] || args+=(--seed "$ANPI_FUZZ_SEED")
log "fuzzing parse_telegram for ${SECONDS_TO_RUN}s (stable fallback)"
t0="$(now)"
set +e
cargo run -q "${profile[@]}" -p anpi-jma --example fuzz_stable -- "${args[@]}" "$@" "${seeds[@]}"
status=$?
set -e
if [ "$status" -ne 0 ]; then
    log "FAILED: the stable fuzzer found a failing input (exit status $status) after $(( $(now) - t0 )) s"
    report_failures stable
    exit 1
fi
log "mode stable: no failure in $(( $(now) - t0 )) s of fuzzing"
