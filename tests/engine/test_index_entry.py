"""An active instance's index entry is made again only when what it shows changed."""

from __future__ import annotations

from typing import Any

from natsflow_engine.index import IndexSettings, InstanceIndex
from natsflow_engine.runtime import records as r


def _state(**variables: Any) -> r.InstanceState:
    state = r.InstanceState(id="i1", tenant="t", process_id="p", version=1, started="2026-12-05T06:00:00+00:00")
    state.eis[1] = r.ElementInstance(key=1, el="p", parent=0, vars=dict(variables))
    return state


def test_a_step_that_changes_nothing_shown_reuses_the_entry_and_writes_nothing() -> None:
    index = InstanceIndex(None, IndexSettings(searchable={"p": ("region",)}))  # type: ignore[arg-type]
    state = _state(region="eu", other=1)
    first = index.entry(state)
    state.step += 5
    state.eis[1].vars = {"region": "eu", "other": 2}  # not searchable
    again = index.entry(state, first)
    assert again is first and index.write(state, again, first) == []


def test_what_an_entry_shows_makes_it_again() -> None:
    index = InstanceIndex(None, IndexSettings(searchable={"p": ("region",)}))  # type: ignore[arg-type]
    state = _state(region="eu")
    first = index.entry(state)

    state.eis[1].vars = {"region": "us"}  # a searchable variable
    second = index.entry(state, first)
    assert second != first and b'"region":"us"' in second.data and index.write(state, second, first)

    state.incidents.append(r.Incident(id="x", ei=1, element_id="p", kind="engine", message="m", at="now"))
    third = index.entry(state, second)
    assert third.key.startswith("t.incident.") and third != second  # moved to the incident bucket

    state.incidents.clear()
    state.state, state.ended = "completed", "2026-12-05T06:01:00+00:00"
    last = index.entry(state, third)
    assert last.ended and last.key.startswith("t.completed.") and last.basis is None
    assert last == index.entry(state)  # an ended instance's entry is always made afresh
