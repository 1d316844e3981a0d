#!/usr/bin/env bash
# Runs Faultline's whole test suite on a fresh machine: installs what the tests need
# (idempotently), then formatting, lints, Rust tests (unit + cross-process), and the tests that
# drive Faultline with the real Python OpenTelemetry SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# A one-shot build gains nothing from incremental artefacts, which doubled the target dir's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

step "Python OpenTelemetry clients (venv in .venv, pinned in tests/python/requirements.txt)"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! cmp -s tests/python/requirements.txt .venv/.installed-requirements 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
    cp tests/python/requirements.txt .venv/.installed-requirements
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "build the faultline binary"
cargo build -p faultline-cli
export FAULTLINE_BIN="$root/target/debug/faultline"

step "cargo test (unit, property and cross-process tests)"
cargo test --workspace

step "Python OpenTelemetry SDK end-to-end tests (and Debian's Prometheus scraping /metrics)"
if ! command -v prometheus >/dev/null; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
fi
.venv/bin/python -m pytest -q tests/python

step "web UI: unit tests (Vitest) and end-to-end tests in headless Chromium (ui/)"
if [ ! -d ui/node_modules ] || ! cmp -s ui/package-lock.json ui/node_modules/.installed-package-lock.json; then
    (cd ui && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-package-lock.json)
fi
if [ ! -x /usr/bin/chromium ]; then
    apt-get update && apt-get install -y chromium
fi
(cd ui && npm test && FAULTLINE_BIN="$FAULTLINE_BIN" npm run e2e)
