"""The benchmark still runs: ``bench/run.py --quick`` with a few instances ends with exactly one
summary line in the documented format (keeps the bench from rotting; not a timed test)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"^reference: (\d+) PI/s, p99 (\d+\.\d) ms, vs SpiffWorkflow (\d+\.\d\d), vs JetStream limit (\d+\.\d\d)$"
)

pytestmark = pytest.mark.timeout(60)


def test_bench_quick_run_prints_one_summary_line():
    # its own process group, so that a hang kills the servers and processes it started too
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--instances",
            "60",
            "--paced-seconds",
            "0.5",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=50)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still running
        if proc.poll() is None:
            proc.communicate()
    assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    lines = stdout.strip().splitlines()
    assert SUMMARY.match(lines[-1]), lines[-1]
    assert sum(1 for line in lines if line.startswith("reference:")) == 1
    rate, p99, vs_spiff, vs_limit = SUMMARY.match(lines[-1]).groups()  # type: ignore[union-attr]
    assert int(rate) > 0 and float(p99) > 0 and float(vs_spiff) > 0 and float(vs_limit) > 0
    assert "| reference / one-process |" in stdout
    assert "SpiffWorkflow serialized" in stdout and "JetStream limit" in stdout
