"""The scale-out, index-paging and retention-soak benches still run, with tiny parameters (they
keep the benches from rotting; no figure is asserted, only that each run completes every
instance and prints what it documents)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def bench(script: str, *args: str, timeout: float = 240) -> str:
    """Run ``bench/<script>`` in its own process group; whatever it started is killed with it."""
    command = [sys.executable, str(ROOT / "bench" / script), *args]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stdout


def test_scale_runs_one_and_two_engines_on_both_workloads(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    stdout = bench(
        "scale.py", "--instances", "40", "--parallel-instances", "6", "--workloads", "reference,parallel10",
        "--replicas", "1,2", "--topologies", "single", "--json", str(out),
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [(r["workload"], r["engines"]) for r in rows] == [
        ("reference", 1), ("reference", 2), ("parallel10", 1), ("parallel10", 2)
    ]  # fmt: skip
    for row in rows:
        assert row["completed"] == row["launched"] > 0
        assert row["cores_used"] > 0 and row["rate"] > 0
    assert rows[0]["efficiency"] == pytest.approx(1.0)
    summary = re.compile(
        r"^scale single / (reference|parallel10): \d+ / \d+ PI/s with 1 / 2 engines, efficiency \d+\.\d\d$"
    )
    lines = stdout.strip().splitlines()
    assert all(summary.match(line) for line in lines[-2:]), lines[-2:]
    assert "| single | parallel10 | 2 |" in stdout


def test_paging_lists_every_instance_the_engine_ran(tmp_path: Path) -> None:
    out = tmp_path / "paging.json"
    stdout = bench("paging.py", "--instances", "1500", "--chunk", "1000", "--repeat", "1", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["load"]["instances"] == 1500
    walk = result["figures"]["walk"]
    assert walk["listed"] == walk["distinct"] == 1500 and walk["pages"] == 2 and "ERROR" not in walk
    for name in ("API first page", "API deep page (half-way cursor)", "CLI natsflow instances --limit 50"):
        assert result["figures"][name]["median_ms"] > 0, name
        assert f"| {name} |" in stdout


def test_soak_samples_memory_and_storage_with_a_short_retention(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    stdout = bench(
        "soak.py", "--minutes", "0.1", "--interval", "3", "--rate", "40", "--retention-live", "1",
        "--retention-archive", "2", "--sweep-interval", "1", "--json", str(out),
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["interval"] for r in rows] == [1, 2]
    for row in rows:
        assert row["completed"] == row["launched"] == 120
        assert row["store_mb"] > 0 and row["rss_mb"]["engine"] > 0
        assert "KV_nf_instances" in row["streams"] and "KV_nf_index" in row["streams"]
    assert stdout.strip().splitlines()[-1].startswith("soak: 240 instances")
