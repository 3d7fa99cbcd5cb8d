"""The image builds (scripts/build-image.sh: podman on a debootstrapped python:3.11-slim) and
`natsflow demo` runs inside it as the non-root user, on a read-only root with a writable /tmp
(as the chart runs it). Containers cannot run on these machines; chroot exercises the image's
filesystem. Slow (minutes): ``pytest -m slow --run-slow``; .ci/run installs podman and debootstrap."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/natsflow:test"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]


def run(*argv: str, timeout: float = 120) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, (
        f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@contextlib.contextmanager
def image_root(tag: str) -> Iterator[Path]:
    """The image's filesystem, read-only, with /proc, /dev and a writable /tmp mounted."""
    mnt = Path(run("podman", "image", "mount", tag).strip())
    mounted: list[Path] = []
    try:
        for args, target in (
            (["-t", "proc", "proc"], mnt / "proc"),
            (["--bind", "/dev"], mnt / "dev"),
            (["-t", "tmpfs", "-o", "mode=1777", "tmpfs"], mnt / "tmp"),
        ):
            run("mount", *args, str(target))
            mounted.append(target)
        yield mnt
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", str(target)], check=False)
        subprocess.run(["podman", "image", "unmount", tag], check=False, capture_output=True)


def as_natsflow(mnt: Path, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            shutil.which("chroot") or "chroot",
            "--userspec=10001:10001",
            str(mnt),
            "/bin/sh",
            "-c",
            f"cd /home/natsflow && {script}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/natsflow", "NATSFLOW_LOG_FORMAT": "json"},
    )


def test_image_builds_and_the_demo_runs_inside_as_the_non_root_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("building with podman and entering the image with chroot need root")
    missing = [tool for tool in ("podman", "debootstrap", "chroot") if shutil.which(tool) is None]
    assert not missing, f"install {', '.join(missing)} (apt; .ci/run does)"
    image = run("bash", "scripts/build-image.sh", TAG, timeout=2400).strip().splitlines()[-1]
    assert run("podman", "image", "inspect", "--format", "{{.Config.User}}", image).strip() == "10001:10001"
    with image_root(TAG) as mnt:
        who = as_natsflow(mnt, "python -c 'import os; print(os.getuid(), os.getgid())'")
        assert who.stdout.split() == ["10001", "10001"], who.stderr
        demo = as_natsflow(mnt, "natsflow demo --instances 5")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "5 orders in" in demo.stdout, demo.stdout
    assert "fulfilled" in demo.stdout
