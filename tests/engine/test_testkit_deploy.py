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


FORM = '{"id": "kit-form", "type": "default", "components": [{"id": "c", "key": "x", "type": "number"}]}'
LINKED = (
    HEAD.replace("<bpmn:definitions ", '<bpmn:definitions xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" ')
    + """
  <bpmn:process id="linked" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ask" />
    <bpmn:userTask id="ask"><bpmn:extensionElements><zeebe:formDefinition formId="kit-form" />
    </bpmn:extensionElements></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="ask" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>"""
)


async def test_a_form_file_deploys_and_its_user_task_links_it(tmp_path: Path) -> None:
    (tmp_path / "kit.form").write_text(FORM)
    async with ProcessTestEngine() as engine:
        assert await engine.deploy_form(tmp_path / "kit.form") == "kit-form"
        assert (await engine.form("kit-form"))["components"][0]["key"] == "x"
        await engine.deploy(LINKED)
        iid = await engine.start_instance("linked")
        await engine.wait_until_idle()
        [task] = await engine.user_tasks(iid)
        assert task.form_id == "kit-form"
        await engine.complete_user_task(task.id, {"x": 4})
        await engine.wait_until_idle()
        assert (await engine.instance(iid)).variables == {"x": 4}
