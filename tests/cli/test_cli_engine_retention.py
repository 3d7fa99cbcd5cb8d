"""``natsflow engine`` takes its default retention from options or the environment (what the
chart's ``engine.retention`` values set): an ended instance leaves the live bucket after it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from natsflow_engine import layout
from natsflow_engine.api.client import ApiClient
from natsflow_engine.index import Retention
from test_cli_options import SIMPLE

from natsflow.cli import main
from natsflow.cli.retention import engine_settings


def test_retention_options_become_the_engines_default() -> None:
    assert engine_settings("forever", "30d").index.retention == Retention(live=None, archive=30 * 86400.0)
    assert engine_settings("12h", "forever").index.retention == Retention(live=12 * 3600.0, archive=None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retention-live", "soon"], "--retention-live: invalid duration 'soon'"),
        (["--retention-archive", "0.5s"], "--retention-archive: '0.5s' is not between 1s and 3650d"),
    ],
)
def test_a_bad_retention_is_one_line_naming_the_option(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--nats-url", "nats://127.0.0.1:1", "engine", *args])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_environment_sets_the_live_retention(nats_url: str, nc: Client, unique: str, tmp_path: Path) -> None:
    env = {**os.environ, "NATS_URL": nats_url, "NATSFLOW_RETENTION_LIVE": "1s", "NATSFLOW_LOG_FORMAT": "text"}
    log = tmp_path / "engine.log"
    with log.open("wb") as err:
        engine = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from natsflow.cli import main; main()",
            "engine",
            "--health-port",
            str(_free_port()),
            env=env,
            stderr=err,
        )
    try:
        api = ApiClient(nc, unique, timeout=5.0)
        async with asyncio.timeout(60):  # a child process on a loaded machine: a generous deadline
            while True:
                try:
                    await api.deploy(SIMPLE.format(pid="short-lived"), name="short.bpmn")
                    break
                except Exception:  # the engine's API server is not up yet
                    assert engine.returncode is None, log.read_text()
                    await asyncio.sleep(0.2)
            ended = (await api.start("short-lived", {}, wait=True)).instance
            records = await nc.jetstream().key_value(layout.BUCKET_INSTANCES)
            while True:
                try:
                    await records.get(layout.instance_key(unique, ended))
                except KeyNotFoundError:
                    break
                await asyncio.sleep(0.1)
        assert (await api.instance(ended)).state == "completed"  # from the archive (30 days)
    finally:
        engine.terminate()
        try:
            async with asyncio.timeout(20):
                await engine.wait()
        except TimeoutError:
            engine.kill()
            await engine.wait()
