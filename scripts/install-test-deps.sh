#!/usr/bin/env bash
# Idempotently create <repo>/.venv with the Python test dependencies
# (pinned in tests/python/requirements.txt) and install rabbitmqadmin v2
# (cargo). Does not install RabbitMQ.
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

# rabbitmqadmin v2 (crates.io) for tests/rabbitmqadmin/run.sh.
RABBITMQADMIN_VERSION=2.35.0
if ! "${CARGO_HOME:-$HOME/.cargo}/bin/rabbitmqadmin" --version 2>/dev/null | grep -q "$RABBITMQADMIN_VERSION"; then
    cargo install --locked --quiet rabbitmqadmin --version "$RABBITMQADMIN_VERSION"
fi
