#!/usr/bin/env bash
# scripts/test.sh — run anpi's whole test suite on a (fresh) Debian machine.
#
#   scripts/test.sh [extra args for the test runner]
#
# 1. installs what is missing from Debian packages (nothing when the machine is prepared):
#    PostgreSQL server, chromium + chromium-driver, fonts-ipafont-gothic, python3-aiosmtpd,
#    python3-dkim + python3-nacl (an independent DKIM verifier, RSA and Ed25519), openssl (test certificates and TLS version checks);
# 2. starts a throwaway PostgreSQL cluster on a free loopback port (removed on exit);
# 3. exports the ANPI_TEST_* variables that the integration tests read;
# 4. checks the house rules: `cargo fmt --check` (rustfmt.toml) and
#    `cargo clippy --workspace --all-targets -- -D warnings` (the lints are in Cargo.toml and
#    clippy.toml); ANPI_SKIP_LINTS=1 skips both;
# 5. fuzzes the JMA telegram parser for ANPI_FUZZ_SECONDS (default 60; 0 skips) with
#    scripts/fuzz-jma.sh (which installs cargo-fuzz when nightly is there);
# 6. runs `cargo nextest run --workspace --no-fail-fast` (or `cargo test --workspace`), and
#    exits with the first failure's status.
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '==> [test.sh] %s\n' "$*" >&2; }
die() { printf '==> [test.sh] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: cannot install packages"
    SUDO=(sudo)
fi

# ---------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------
pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ]; then
        printf '%s\n' "$d"
    fi
}
has_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
has_aiosmtpd() { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; }

missing=()
[ -n "$(pg_bindir)" ] || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
has_pkg fonts-ipafont-gothic || missing+=(fonts-ipafont-gothic)
has_aiosmtpd || missing+=(python3-aiosmtpd)
has_dkimpy() { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import dkim, nacl' >/dev/null 2>&1; }
has_dkimpy || missing+=(python3-dkim python3-nacl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing missing Debian packages: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    if ! apt_install "${missing[@]}"; then
        # python3-aiosmtpd is the one with a pip fallback; retry the rest without it.
        rest=()
        for p in "${missing[@]}"; do [ "$p" = python3-aiosmtpd ] || rest+=("$p"); done
        [ "${#rest[@]}" -lt "${#missing[@]}" ] || die "apt-get install ${missing[*]} failed"
        log "apt-get install failed; retrying without python3-aiosmtpd (pip fallback below)"
        if [ "${#rest[@]}" -gt 0 ]; then apt_install "${rest[@]}" || die "apt-get install ${rest[*]} failed"; fi
    fi
else
    log "all Debian packages present (postgresql, chromium, chromium-driver, fonts-ipafont-gothic, python3-aiosmtpd, python3-dkim)"
fi

PG_BIN="$(pg_bindir)"
[ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
command -v chromium >/dev/null 2>&1 || die "chromium not found after install"
command -v chromedriver >/dev/null 2>&1 || die "chromedriver not found after install"
has_dkimpy || die "the DKIM verifier is missing: /usr/bin/python3 cannot import dkim and nacl (python3-dkim, python3-nacl)"

# aiosmtpd: Debian's python first, then the python in PATH (pip fallback).
if has_aiosmtpd; then
    SMTPD_PY=/usr/bin/python3
else
    command -v python3 >/dev/null 2>&1 || die "aiosmtpd unavailable: no /usr/bin/python3 with aiosmtpd and no python3 in PATH"
    py="$(python3 -c 'import sys; print(sys.executable)')"
    if ! "$py" -c 'import aiosmtpd' >/dev/null 2>&1; then
        log "python3-aiosmtpd unavailable; installing aiosmtpd with pip for $py"
        "$py" -m pip install --quiet aiosmtpd \
            || "$py" -m pip install --quiet --break-system-packages aiosmtpd \
            || die "pip install aiosmtpd failed for $py"
    fi
    "$py" -c 'import aiosmtpd' >/dev/null 2>&1 || die "aiosmtpd still not importable with $py"
    SMTPD_PY="$py"
fi

# ---------------------------------------------------------------------------------------------
# 2. throwaway PostgreSQL cluster
# ---------------------------------------------------------------------------------------------
PG_DIR=""
PG_USER=""
as_pg() {
    if [ -n "$PG_USER" ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}
cleanup() {
    local status=$?
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        if [ -f "$PG_DIR/data/postmaster.pid" ]; then
            log "stopping throwaway PostgreSQL cluster"
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        rm -rf "$PG_DIR"
    fi
    exit "$status"
}
RUNNER_PID=""
on_signal() {
    # Forward to the test runner (it runs in the background so that this trap runs at once).
    if [ -n "$RUNNER_PID" ]; then
        kill -TERM "$RUNNER_PID" 2>/dev/null || true
        wait "$RUNNER_PID" 2>/dev/null || true
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Runs a command in the background (so that a signal reaches on_signal at once) and waits for
# it; sets `status` to its exit status.
run_in_background() {
    set +e
    "$@" &
    RUNNER_PID=$!
    wait "$RUNNER_PID"
    status=$?
    RUNNER_PID=""
    set -e
}

start_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        # postgres refuses to run as root: run the cluster as the `postgres` OS user.
        if ! id -u postgres >/dev/null 2>&1; then
            log "creating OS user postgres"
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        PG_USER=postgres
    fi

    free_port() {
        local py=""
        for c in /usr/bin/python3 python3; do command -v "$c" >/dev/null 2>&1 && { py="$c"; break; }; done
        if [ -n "$py" ]; then
            "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
        else
            echo $(( 20000 + RANDOM % 40000 ))
        fi
    }

    PG_DIR="$(mktemp -d /tmp/anpi-pg.XXXXXX)"
    chmod 0755 "$PG_DIR"
    [ -z "$PG_USER" ] || chown "$PG_USER" "$PG_DIR"
    log "initialising throwaway PostgreSQL cluster in $PG_DIR ($PG_BIN)"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync \
        >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }

    PG_PORT=""
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start >/dev/null 2>&1; then
            PG_PORT="$port"
            break
        fi
        log "PostgreSQL did not start on port $port (attempt $attempt); retrying"
        tail -n 20 "$PG_DIR/postgres.log" >&2 2>/dev/null || true
    done
    [ -n "$PG_PORT" ] || die "could not start PostgreSQL (log: $PG_DIR/postgres.log)"

    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres \
        -c "CREATE ROLE anpi LOGIN SUPERUSER" >/dev/null || die "could not create role anpi"
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') listening on 127.0.0.1:$PG_PORT"
}

if [ -n "${ANPI_TEST_DATABASE_URL:-}" ]; then
    log "ANPI_TEST_DATABASE_URL is already set: using that PostgreSQL, not starting a throwaway cluster"
else
    start_postgres
    export ANPI_TEST_DATABASE_URL="postgres://anpi@127.0.0.1:$PG_PORT/postgres"
fi

# ---------------------------------------------------------------------------------------------
# 3. environment for the tests
# ---------------------------------------------------------------------------------------------
export ANPI_TEST_CHROMEDRIVER="${ANPI_TEST_CHROMEDRIVER:-$(command -v chromedriver)}"
export ANPI_TEST_CHROMIUM="${ANPI_TEST_CHROMIUM:-$(command -v chromium)}"
export ANPI_TEST_AIOSMTPD_PYTHON="${ANPI_TEST_AIOSMTPD_PYTHON:-$SMTPD_PY}"
export ANPI_TEST_DKIM_PYTHON="${ANPI_TEST_DKIM_PYTHON:-/usr/bin/python3}"
if [ -z "${ANPI_SHARED_DIR:-}" ] && [ -d "$ROOT/../shared" ]; then
    ANPI_SHARED_DIR="$(cd "$ROOT/../shared" && pwd)"
    export ANPI_SHARED_DIR
fi
for v in ANPI_TEST_DATABASE_URL ANPI_TEST_CHROMEDRIVER ANPI_TEST_CHROMIUM ANPI_TEST_AIOSMTPD_PYTHON ANPI_TEST_DKIM_PYTHON ANPI_SHARED_DIR; do
    log "$v=${!v:-<unset>}"
done

# ---------------------------------------------------------------------------------------------
# 4. house rules: formatting (rustfmt.toml) and lints (Cargo.toml [workspace.lints],
#    clippy.toml) with warnings as errors
# ---------------------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH"
if [ "${ANPI_SKIP_LINTS:-}" = 1 ]; then
    log "ANPI_SKIP_LINTS=1: not running rustfmt and clippy"
else
    cargo fmt --version >/dev/null 2>&1 || { log "installing rustfmt"; rustup component add rustfmt; }
    log "running: cargo fmt --all --check"
    cargo fmt --all --check || die "formatting differs from rustfmt.toml: run cargo fmt"
    cargo clippy --version >/dev/null 2>&1 || { log "installing clippy"; rustup component add clippy; }
    log "running: cargo clippy --workspace --all-targets -- -D warnings"
    run_in_background cargo clippy --workspace --all-targets -- -D warnings
    [ "$status" -eq 0 ] || { log "clippy FAILED (exit status $status)"; exit "$status"; }
fi

# ---------------------------------------------------------------------------------------------
# 5. bounded fuzzing of the JMA telegram parser (a failing input fails the run), first, so the
#    test runner's summary is the last thing printed
# ---------------------------------------------------------------------------------------------
FUZZ_SECONDS="${ANPI_FUZZ_SECONDS:-60}"
case "$FUZZ_SECONDS" in ''|*[!0-9]*) die "ANPI_FUZZ_SECONDS must be a number of seconds (got '$FUZZ_SECONDS')" ;; esac
if [ "$FUZZ_SECONDS" -eq 0 ]; then
    log "ANPI_FUZZ_SECONDS=0: not fuzzing"
else
    log "running: scripts/fuzz-jma.sh $FUZZ_SECONDS"
    run_in_background scripts/fuzz-jma.sh "$FUZZ_SECONDS"
    if [ "$status" -eq 0 ]; then log "fuzzing found no failure"; else log "fuzzing FAILED (exit status $status)"; fi
    [ "$status" -eq 0 ] || exit "$status"
fi


# ---------------------------------------------------------------------------------------------
# 6. the tests
# ---------------------------------------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --workspace --no-fail-fast "$@")
else
    runner=(cargo test --workspace "$@")
fi
log "running: ${runner[*]}"
run_in_background "${runner[@]}"
if [ "$status" -eq 0 ]; then log "tests passed"; else log "tests FAILED (exit status $status)"; fi
exit "$status"

