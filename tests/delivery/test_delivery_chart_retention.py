"""The chart's ``engine.retention`` values reach the engine's environment (``natsflow engine``
reads ``NATSFLOW_RETENTION_LIVE`` / ``_ARCHIVE``: tests/cli/test_cli_engine_retention.py), and
the schema refuses a value the engine would refuse."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
RunHelm = Callable[..., subprocess.CompletedProcess[str]]
FULLNAME = "flow-natsflow"


def _engine_env(manifests: list[Manifest]) -> dict[str, Any]:
    [engine] = [m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == f"{FULLNAME}-engine"]
    container = engine["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_the_default_retention_is_the_engines_own(render: Render) -> None:
    env = _engine_env(render())
    assert (env["NATSFLOW_RETENTION_LIVE"], env["NATSFLOW_RETENTION_ARCHIVE"]) == ("forever", "30d")


def test_retention_values_reach_the_engine(render: Render) -> None:
    env = _engine_env(render({"engine": {"retention": {"live": "12h", "archive": "90d"}}}))
    assert (env["NATSFLOW_RETENTION_LIVE"], env["NATSFLOW_RETENTION_ARCHIVE"]) == ("12h", "90d")


@pytest.mark.parametrize("value", ["1 day", "", "-1h", "10y"])
def test_a_bad_retention_fails_helm_template(run_helm: RunHelm, value: str) -> None:
    proc = run_helm("template", {"engine": {"retention": {"live": value}}})
    assert proc.returncode != 0
    assert "/engine/retention/live" in proc.stderr, proc.stderr
