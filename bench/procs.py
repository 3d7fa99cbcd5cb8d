"""Bench subprocesses (``python -m bench.node``) driven over JSON lines, and a sampler of their
CPU time and memory. Every process started here is stopped (SIGTERM, then SIGKILL) by
:meth:`NodeProcess.stop` or :meth:`NodeProcess.kill`; callers use ``try/finally``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from bench.common import ROOT


class NodeProcess:
    def __init__(self, name: str, args: list[str], *, log_dir: Path | None = None) -> None:
        self.name = name
        self.args = args
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="natsflow-bench-"))
        self.log_path = self.log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.stats: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def _log_file(self) -> Any:
        return open(self.log_path, "ab")

    async def start(self, *, ready_timeout: float = 60.0) -> NodeProcess:
        with self._log_file() as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.node", *self.args,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                limit=2**24,  # a mark line carries up to 20,000 latency samples
            )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        await self.expect("ready", ready_timeout)
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                await self._events.put({"event": "exit"})
                return
            with contextlib.suppress(ValueError):
                await self._events.put(json.loads(line))

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next line with this event (others are skipped); fails on exit or timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no '{event}' within {timeout}s; log {self.log_path}")
            try:
                item = await asyncio.wait_for(self._events.get(), remaining)
            except TimeoutError:
                continue
            if item.get("event") == event:
                return item
            if item.get("event") == "exit":
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited while waiting for '{event}':\n{tail}")

    async def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def mark(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        return await self.expect("mark", timeout)

    async def stop(self, timeout: float = 15.0) -> dict[str, Any]:
        """Graceful stop; returns the ``stats`` line (empty if the process had to be killed)."""
        if self.proc is None:
            return self.stats
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # a load process waiting for "go" sees end of input
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.stats = await self.expect("stats", timeout)
            except (TimeoutError, RuntimeError):
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._close()
        return self.stats

    async def kill(self) -> None:
        """SIGKILL (fault tests)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await self._close()

    async def _close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        self._events = asyncio.Queue()


class Sampler:
    """Peak RSS of some processes (sampled every ``interval`` s) and their CPU seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[name] = t.user + t.system
        return out

    @staticmethod
    def machine_busy() -> float:
        """CPU seconds the whole machine spent busy (all processes, all cores)."""
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))

    def sample(self) -> None:
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                self.peak[name] = max(self.peak[name], p.memory_info().rss)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()
