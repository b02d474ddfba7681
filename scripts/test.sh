#!/usr/bin/env bash
# The single test command of the project.
#   ./scripts/test.sh                 build, cargo tests, console in Chromium, python suite vs warren
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F ./scripts/test.sh
#                                     python suite against that broker instead
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-deps.sh

cargo build --workspace --bins
cargo test --workspace
python3 -m unittest discover -s scripts/bench -p 'test_*.py' # bench report logic, no broker

echo "== web console in Chromium (screenshots: target/console-screenshots/)"
(cd tests/console && WARREN_BIN="$PWD/../../target/debug/warren" npm test --silent)

if [ -n "${AMQP_URL:-}" ]; then
    echo "== python suite against AMQP_URL=$AMQP_URL"
    .venv/bin/python -m pytest -q tests/python
else
    echo "== python suite against target/debug/warren"
    WARREN_BIN=target/debug/warren .venv/bin/python -m pytest -q tests/python
fi

echo "== rabbitmqadmin v2 against target/debug/warren"
WARREN_BIN=target/debug/warren tests/rabbitmqadmin/run.sh
