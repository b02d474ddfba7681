#!/usr/bin/env bash
# Soak test (not in CI): publishers, consumers, queue and connection churn
# (warren-perf) and SIGKILL/restarts of warren for SOAK_SECONDS (default
# 3600), invariants checked every SOAK_CHECK_SECONDS (60). See
# tests/python/soak.py for the invariants and every setting.
#   ./scripts/soak.sh                      an hour against target/debug/warren
#   SOAK_SECONDS=600 WARREN_BIN=target/release/warren ./scripts/soak.sh
# A short run (60 s) is part of the python suite: tests/python/test_soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./scripts/install-test-deps.sh
if [ -z "${WARREN_BIN:-}" ]; then
    cargo build --bins -p warren -p warren-perf
fi
exec .venv/bin/python tests/python/soak.py
