"""The soak test (tests/python/soak.py, scripts/soak.sh) in short: 60 s of
publishers, consumers, churn and SIGKILLs every 5-12 s, invariants checked
every 20 s. Runs only against warren (it kills and restarts its own)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(bool(os.environ.get("AMQP_URL")),
                                reason="needs its own warren process to kill")


def test_soak_60s_with_kills_nothing_confirmed_lost():
    env = dict(os.environ, SOAK_SECONDS="60", SOAK_CHECK_SECONDS="20",
               SOAK_KILL_MIN_S="5", SOAK_KILL_MAX_S="12", SOAK_DRAIN_SECONDS="15")
    if os.environ.get("WARREN_BIN"):
        b = os.environ["WARREN_BIN"]
        env["WARREN_BIN"] = b if os.path.isabs(b) else os.path.join(REPO_ROOT, b)
    r = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests/python/soak.py")],
                       env=env, capture_output=True, text=True, timeout=90)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "soak passed" in r.stdout
    summary = json.loads(r.stdout.splitlines()[-2])
    assert summary["kills"] > 0 and summary["confirmed"] > 1000, summary
