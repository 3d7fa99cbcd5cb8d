"""The engine's default retention, from options or the environment (the chart's values).

``natsflow engine --retention-live 1d --retention-archive 30d`` (or ``NATSFLOW_RETENTION_LIVE``
and ``NATSFLOW_RETENTION_ARCHIVE``): how long an ended instance stays in the live bucket, then in
the archive, unless its Workflow resource sets ``retention``. ``forever`` keeps it.
"""

from __future__ import annotations

import click
from natsflow_engine.index import IndexSettings, Retention
from natsflow_engine.runtime.engine import EngineSettings

from natsflow.cli.support import parse_duration
from natsflow.errors import NatsflowError

__all__ = ["FOREVER", "engine_settings", "retention_options"]

FOREVER = "forever"
_DEFAULTS = Retention()
_LONGEST = 10 * 365 * 86400.0


def _text(seconds: float | None) -> str:
    return FOREVER if seconds is None else f"{seconds / 86400:g}d"


def retention_options() -> list[click.Option]:
    return [
        click.Option(
            ["--retention-live", "retention_live"],
            default=_text(_DEFAULTS.live),
            show_default=True,
            envvar="NATSFLOW_RETENTION_LIVE",
            help="How long an ended instance stays in the live bucket (e.g. 1d, 12h, or forever).",
        ),
        click.Option(
            ["--retention-archive", "retention_archive"],
            default=_text(_DEFAULTS.archive),
            show_default=True,
            envvar="NATSFLOW_RETENTION_ARCHIVE",
            help="How long its final record and history stay in the archive after it ended.",
        ),
    ]


def _seconds(option: str, text: str) -> float | None:
    if text.strip() == FOREVER:
        return None
    try:
        seconds = parse_duration(text)
    except NatsflowError as exc:
        raise NatsflowError(f"{option}: {exc}") from None
    if not 1.0 <= seconds <= _LONGEST:
        raise NatsflowError(f"{option}: {text!r} is not between 1s and 3650d (or {FOREVER})")
    return seconds


def engine_settings(live: str, archive: str) -> EngineSettings:
    """Engine settings with this default retention (a Workflow's own retention still wins)."""
    retention = Retention(live=_seconds("--retention-live", live), archive=_seconds("--retention-archive", archive))
    return EngineSettings(index=IndexSettings(retention=retention))
