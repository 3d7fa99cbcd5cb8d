"""The components the docs, the Dockerfile and the chart name are commands that exist (there is
no `api` component: the request-reply API runs inside every engine replica)."""

from __future__ import annotations

import re
from pathlib import Path

from natsflow.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def named_components() -> dict[str, set[str]]:
    install = (ROOT / "docs" / "install.md").read_text()
    row = next(line for line in install.splitlines() if line.startswith("| `Dockerfile` |"))
    values = (ROOT / "charts" / "natsflow" / "values.yaml").read_text()
    image_comment = next(line for line in values.splitlines() if "One image runs every component" in line)
    header = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if "natsflow engine |" in line
    )
    return {
        "install.md": set(re.findall(r"`(?:natsflow )?([a-z-]+)(?: [A-Z:]+)?`", row.split("|")[2])),
        "values.yaml": set(
            re.findall(r"\|? ?([a-z-]+)", image_comment.split("`natsflow", 1)[1].split("`")[0])
        ),
        "Dockerfile": {w.split()[0] for w in header.split("natsflow", 1)[1].split("|")},
    }


def test_every_named_component_is_a_command() -> None:
    commands = set(cli.commands)
    for where, names in named_components().items():
        assert names, where
        assert "api" not in names, f"{where} lists an `api` component"
        assert names <= commands, f"{where} names {sorted(names - commands)}, which are no natsflow commands"
