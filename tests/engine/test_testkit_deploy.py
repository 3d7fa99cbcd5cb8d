"""What ``ProcessTestEngine.deploy`` accepts, and processes that could never start."""

from __future__ import annotations

from pathlib import Path

import pytest

from natsflow.errors import BpmnValidationError
from natsflow.testing import ProcessTestEngine

MODELS = Path(__file__).parent / "models"
HEAD = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">'
)
ONLY_AN_EVENT_SUBPROCESS = (
    HEAD
    + """
  <bpmn:process id="listens" isExecutable="true">
    <bpmn:subProcess id="on_timer" triggeredByEvent="true">
      <bpmn:startEvent id="tick"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1S</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:startEvent>
      <bpmn:sequenceFlow id="f" sourceRef="tick" targetRef="done" />
      <bpmn:endEvent id="done" />
    </bpmn:subProcess>
  </bpmn:process>
</bpmn:definitions>"""
)


async def test_deploy_text_with_a_byte_order_mark_empty_text_and_paths() -> None:
    text = (MODELS / "reference.bpmn").read_text(encoding="utf-8-sig")
    async with ProcessTestEngine() as engine:
        assert await engine.deploy("\ufeff" + text) == ["reference"]
        assert await engine.deploy("\ufeff\n  " + text) == ["reference"]
        assert await engine.deploy(str(MODELS / "reference.bpmn")) == ["reference"]
        for empty in ("", "  \n", "\ufeff"):
            with pytest.raises(BpmnValidationError, match="the BPMN source is empty"):
                await engine.deploy(empty)


async def test_a_process_that_nothing_can_start_is_refused_at_deploy() -> None:
    async with ProcessTestEngine() as engine:
        with pytest.raises(BpmnValidationError, match="no instance can ever start"):
            await engine.deploy(ONLY_AN_EVENT_SUBPROCESS)
