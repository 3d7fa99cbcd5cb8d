"""``natsflow console`` and the console of ``natsflow dev``, run as the user runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

NATSFLOW = str(Path(sys.executable).parent / "natsflow")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_console_refuses_to_start_without_users(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATSFLOW_CONSOLE")}
    proc = subprocess.run(
        [NATSFLOW, "console", "--port", "0"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 1
    assert "no console users" in proc.stderr

    bad = tmp_path / "users.yaml"
    bad.write_text("users: [{name: a, tenant: NOPE, token: 0123456789abcdef}]")
    proc = subprocess.run(
        [NATSFLOW, "console", "--users", str(bad)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 1
    assert "users[0].tenant" in proc.stderr


def test_dev_prints_the_console_url_and_its_token_signs_in(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [NATSFLOW, "dev", "--port", "0", "--console-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # ends when dev exits: a crash fails the test, it cannot hang
            found = re.search(r"console on (http://\S+)/login#token=(\S+)", line)
            if found:
                url, token = found.groups()
                break
        assert url, "natsflow dev printed no console URL"
        opener = urllib.request.build_opener(_NoRedirect)
        data = urllib.parse.urlencode({"token": token}).encode()
        with pytest.raises(urllib.error.HTTPError) as caught:  # the redirect after sign-in
            opener.open(urllib.request.Request(url + "/login", data=data), timeout=10)
        redirect = caught.value
        assert redirect.code == 302 and redirect.headers["Location"] == "/"
        cookie = redirect.headers["Set-Cookie"].split(";")[0]
        me = urllib.request.urlopen(
            urllib.request.Request(url + "/api/me", headers={"Cookie": cookie}), timeout=10
        )
        assert b'"tenant":"default"' in me.read()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
