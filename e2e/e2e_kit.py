"""Helpers of the kind-based end-to-end suite: commands, kubectl, port-forwards, polling.

Everything here drives real tools (docker, kind, kubectl, helm) with bounded timeouts; nothing
is mocked. The suite skips itself where the tools are missing (see conftest.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
RELEASE = "natsflow"
SYSTEM_NS = "natsflow-system"
IMAGE = "natsflow:e2e"
WORKER_IMAGE = "natsflow-worker:e2e"
NATS_SERVICE = f"svc/{RELEASE}-nats"  # the chart's bundled server (nats.enabled=true)
T = TypeVar("T")


class CommandFailed(AssertionError):
    """A command exited non-zero; carries its output for the test report."""


def run(
    args: Sequence[str],
    *,
    timeout: float = 300,
    input: str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
        env=env,
        cwd=cwd or ROOT,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"$ {' '.join(args)}\nexit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
            f"--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def docker_engine_reachable() -> tuple[bool, str]:
    """(reachable, why not): the client alone is not enough, `docker info` must reach a daemon."""
    if shutil.which("docker") is None:
        return False, "docker CLI not found"
    try:
        proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False, "docker info timed out"
    if proc.returncode != 0 or not proc.stdout.strip():
        return False, (proc.stderr.strip().splitlines() or ["no server version"])[-1]
    return True, ""


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = 180, interval: float = 2) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the last error."""
    deadline = time.monotonic() + timeout
    last: str = "never true"
    while True:
        try:
            value = probe()
        except (CommandFailed, subprocess.TimeoutExpired, KeyError, IndexError, ValueError) as exc:
            value, last = None, f"{type(exc).__name__}: {exc}"
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last})")
        time.sleep(interval)


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True) -> str:
        return self.proc(*args, input=input, timeout=timeout, check=check).stdout

    def proc(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), *args]
        return run(cmd, input=input, timeout=timeout, check=check)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = ["-n", namespace] if namespace else []
        return json.loads(self("get", kind, name, *ns, "-o", "json"))  # type: ignore[no-any-return]

    def exists(self, kind: str, name: str, namespace: str | None = None) -> bool:
        ns = ["-n", namespace] if namespace else []
        out = self("get", kind, name, *ns, "--ignore-not-found", "-o", "name")
        return bool(out.strip())

    def apply(self, manifests: list[dict[str, Any]], namespace: str | None = None) -> str:
        ns = ["-n", namespace] if namespace else []
        doc = "\n---\n".join(json.dumps(m) for m in manifests)
        return self("apply", "--server-side", "--force-conflicts", *ns, "-f", "-", input=doc)


@dataclass
class PortForward:
    """``kubectl port-forward`` on a random local port, for the duration of a ``with`` block."""

    kubectl: Kubectl
    target: str
    namespace: str
    remote_port: int
    local_port: int = 0
    _proc: subprocess.Popen[str] | None = field(default=None, repr=False)

    def __enter__(self) -> PortForward:
        cmd = [
            self.kubectl.binary,
            "--kubeconfig",
            str(self.kubectl.kubeconfig),
            "-n",
            self.namespace,
            "port-forward",
            self.target,
            f":{self.remote_port}",
            "--address",
            "127.0.0.1",
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            found = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if found:
                self.local_port = int(found.group(1))
                return self
        err = self._proc.stderr.read() if self._proc.stderr else ""
        self.__exit__()
        raise CommandFailed(f"port-forward {self.target} did not start: {err}")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    stream.close()
            self._proc = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.local_port}"


@contextmanager
def port_forward(kubectl: Kubectl, target: str, namespace: str, port: int) -> Iterator[PortForward]:
    with PortForward(kubectl, target, namespace, port) as pf:
        yield pf


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    """The Argo CD health rule: Ready=True for the current generation."""
    cond = condition(obj, "Ready")
    status = obj.get("status", {})
    return bool(
        cond
        and cond.get("status") == "True"
        and status.get("observedGeneration") == obj["metadata"].get("generation")
    )


def concrete_subject(subject: str, suffix: str) -> str:
    """A publishable subject matching a Trigger's subject pattern (wildcards filled in)."""
    tokens = subject.split(".")
    out = [suffix if t in ("*", ">") else t for t in tokens]
    return ".".join(out)
