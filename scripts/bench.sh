#!/usr/bin/env bash
# scripts/bench.sh — the benchmarks of docs/benchmarks.md on a (fresh) Debian machine.
#
#   scripts/bench.sh [loop|send|all]     (default: all)
#
# Installs what the benchmarks need when missing — Postfix (smtp-sink and smtp-source: the
# ceiling and the fast sink of the send bench; the daemon is not started) and python3-aiosmtpd
# (the loop bench's sink) — then runs `cargo bench -p anpi --bench …`. PostgreSQL is measured
# too when ANPI_TEST_DATABASE_URL names an admin URL (the benches create and drop their own
# databases); the ANPI_BENCH_* knobs of docs/benchmarks.md pass through.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> [bench.sh] %s\n' "$*" >&2; }
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

missing=()
command -v smtp-sink >/dev/null 2>&1 && command -v smtp-source >/dev/null 2>&1 || missing+=(postfix)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
export ANPI_TEST_AIOSMTPD_PYTHON="${ANPI_TEST_AIOSMTPD_PYTHON:-/usr/bin/python3}"
[ -n "${ANPI_SHARED_DIR:-}" ] || { [ -d ../shared ] && export ANPI_SHARED_DIR="$(cd ../shared && pwd)"; } || true
[ -n "${ANPI_TEST_DATABASE_URL:-}" ] || log "ANPI_TEST_DATABASE_URL not set: SQLite only"

case "${1:-all}" in
    loop) cargo bench -p anpi --bench loop ;;
    send) cargo bench -p anpi --bench send ;;
    all) cargo bench -p anpi --bench send && cargo bench -p anpi --bench loop ;;
    *) log "usage: scripts/bench.sh [loop|send|all]"; exit 2 ;;
esac
