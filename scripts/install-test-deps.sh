#!/usr/bin/env bash
# Idempotently create <repo>/.venv with the Python test dependencies
# (pinned in tests/python/requirements.txt). Does not install RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
REQ=tests/python/requirements.txt
STAMP="$VENV/.requirements.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import pika, pytest' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want" > "$STAMP"
fi

# rabbitmqadmin v2 (the Rust one, from crates.io) for tests/python/test_rabbitmqadmin.py:
# installed into the project-local .tools/ (skipped when that version is there).
# Set WARREN_SKIP_RABBITMQADMIN=1 to skip it.
RABBITMQADMIN_VERSION=2.35.0
if [ "${WARREN_SKIP_RABBITMQADMIN:-0}" != 1 ]; then
    if ! .tools/bin/rabbitmqadmin --version 2>/dev/null | grep -q "$RABBITMQADMIN_VERSION"; then
        cargo install --quiet --locked --root .tools --version "$RABBITMQADMIN_VERSION" rabbitmqadmin
    fi
fi
