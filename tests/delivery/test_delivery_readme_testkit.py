"""The README's ProcessTestEngine example works in a fresh project: only natsflow and pytest,
no async plugin, no configuration (the ``pytest11`` plugin of natsflow runs async tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    found = [b for b in blocks if "ProcessTestEngine" in b]
    assert len(found) == 1, found
    return found[0]


def run_pytest(project: Path, *plugins: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``project`` as a fresh project sees it: pytest-asyncio switched off."""
    disabled = [arg for name in ("asyncio", "kmock", *plugins) for arg in ("-p", f"no:{name}")]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *disabled, "test_order.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readme_process_test_runs_in_a_fresh_project(tmp_path: Path) -> None:
    (tmp_path / "test_order.py").write_text(readme_example())
    shutil.copy(ROOT / "examples" / "order-fulfilment" / "order-fulfilment.bpmn", tmp_path)
    proc = run_pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    # without the plugin, pytest itself refuses the async test
    bare = run_pytest(tmp_path, "natsflow")
    assert bare.returncode != 0 and "async def functions are not natively supported" in bare.stdout
