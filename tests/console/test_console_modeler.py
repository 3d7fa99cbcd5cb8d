"""The modeler in a real browser: draw from the palette, see natsflow's validation at an element
and fix it in the properties panel, simulate with a mocked task and a BPMN error, deploy and
export; the saved XML deploys and runs unchanged in the test kit."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from console_kit import Stack, approval, operator_token
from test_console_browser import shot

from natsflow.testing import ProcessTestEngine

pytestmark = pytest.mark.timeout(240)

Open = Callable[..., Any]


def modeler(page: Any, script: str, arg: Any = None) -> Any:
    """Run ``script`` (a function of the bpmn-js modeler and ``arg``) in the page."""
    return page.evaluate(
        f"([arg]) => {{ const m = document.getElementById('modeler').nfModeler; return ({script})(m, arg); }}", [arg]
    )


def center(page: Any, element_id: str) -> tuple[float, float]:
    box = page.locator(f"#modeler .djs-element[data-element-id='{element_id}']").first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def saved_xml(page: Any) -> str:
    return str(modeler(page, "async (m) => (await m.saveXML({ format: true })).xml"))


def import_warnings(page: Any, xml: str) -> list[str]:
    """Warnings of bpmn-js (with zeebe-bpmn-moddle, as the page's modeler has it) importing ``xml``."""
    return list(modeler(page, "async (m, xml) => (await m.importXML(xml)).warnings.map((w) => w.message)", xml))


def test_draw_validate_fix_simulate_and_publish(
    stack: Stack, tenants: dict[str, str], open_page: Open
) -> None:
    tenant = tenants["alice"]
    page = open_page(operator_token(tenant), "/modeler")
    page.wait_for_selector("#modeler .djs-palette")
    page.wait_for_selector("#validation[data-state]")
    process_id = modeler(page, "(m) => m.getDefinitions().rootElements.find((e) => e.$type === 'bpmn:Process').id")

    # draw: a task appended to the start event, made a service task, an end event from the palette
    page.locator("#modeler .djs-element[data-element-id='StartEvent_1']").click()
    page.locator(".djs-context-pad [data-action='append.append-task']").click()
    task = modeler(page, "(m) => m.get('selection').get()[0].id")
    page.locator(".djs-context-pad [data-action='replace']").click()
    page.locator(".djs-popup [data-id='replace-with-service-task']").click()
    task = modeler(page, "(m) => m.get('selection').get()[0].id")
    page.locator("#modeler .djs-palette [data-action='create.end-event']").click()
    x, y = center(page, task)
    page.mouse.move(x + 150, y)
    page.mouse.click(x + 150, y)
    end = modeler(page, "(m) => m.get('selection').get()[0].id")
    page.locator(f"#modeler .djs-element[data-element-id='{task}']").click()
    page.locator(".djs-context-pad [data-action='connect']").click()
    ex, ey = center(page, end)
    page.mouse.move(ex, ey)
    page.mouse.click(ex, ey)

    # the validator marks the service task: it has no job type
    badge = page.wait_for_selector(f"#modeler .nf-error-badge[data-element='{task}']")
    assert "type" in (badge.get_attribute("title") or "")
    page.wait_for_selector(f"#validation-issues li[data-element='{task}']")
    shot(page, "modeler-error")

    # fix it in the properties panel
    modeler(page, "(m, id) => m.get('selection').select(m.get('elementRegistry').get(id))", task)
    page.wait_for_selector("#properties [data-group-id='group-taskDefinition']")
    header = page.locator("#properties [data-group-id='group-taskDefinition'] .bio-properties-panel-group-header")
    if "open" not in (header.get_attribute("class") or ""):
        header.click()
    page.locator("#properties #bio-properties-panel-taskDefinitionType").fill("charge")
    page.wait_for_selector("#validation[data-state='valid']")
    assert page.locator("#modeler .nf-error-badge").count() == 0

    # a BPMN error boundary event on the task, leading to its own end
    modeler(
        page,
        """(m, task) => {
            const modeling = m.get('modeling'), registry = m.get('elementRegistry'), factory = m.get('bpmnFactory');
            const host = registry.get(task);
            const error = factory.create('bpmn:Error', { name: 'Declined', errorCode: 'DECLINED' });
            m.getDefinitions().rootElements.push(error);
            error.$parent = m.getDefinitions();
            const boundary = modeling.createShape({ type: 'bpmn:BoundaryEvent', eventDefinitionType: 'bpmn:ErrorEventDefinition' },
              { x: host.x + host.width / 2, y: host.y + host.height }, host, { attach: true });
            modeling.updateModdleProperties(boundary, boundary.businessObject.eventDefinitions[0], { errorRef: error });
            modeling.updateProperties(boundary, { id: 'declined' });
            const failed = modeling.appendShape(boundary, { type: 'bpmn:EndEvent' }, { x: host.x + host.width / 2 + 100, y: host.y + host.height + 80 });
            modeling.updateProperties(failed, { id: 'end_declined' });
        }""",
        task,
    )
    page.wait_for_selector("#validation[data-state='valid']")

    # simulate: the mock completes, then throws the BPMN error
    page.wait_for_function("document.getElementById('sim-scenario').value.includes('charge')")
    scenario = json.loads(page.input_value("#sim-scenario"))
    assert scenario["tasks"] == {"charge": {"complete": {}}}
    scenario["variables"] = {"amount": 5}
    scenario["tasks"]["charge"] = {"complete": {"charged": True}}
    page.fill("#sim-scenario", json.dumps(scenario))
    page.click("#sim-run")
    page.wait_for_selector("#sim-state:text-is('completed')")
    assert page.inner_text("#sim-path") == f"StartEvent_1 → {task} → {end}"
    page.click("#sim-first")
    page.wait_for_selector("#sim-position:has-text('step 1 of 2')")
    assert page.locator(f"#modeler .nf-token[data-element='{task}']").count() == 1
    assert page.inner_text("#sim-variables tr[data-name='amount'] td.value") == "5"
    page.click("#sim-next")
    page.wait_for_selector("#sim-position:has-text('step 2 of 2')")
    assert page.locator("#modeler .nf-token").count() == 0
    assert page.inner_text("#sim-variables tr[data-name='charged'] td.value") == "true"

    scenario["tasks"]["charge"] = {"error": {"code": "DECLINED", "message": "card declined"}}
    page.fill("#sim-scenario", json.dumps(scenario))
    page.click("#sim-run")
    page.wait_for_selector("#sim-path:has-text('declined → end_declined')")
    assert page.inner_text("#sim-state") == "completed"
    page.click("#sim-last")
    page.wait_for_selector("#sim-position:has-text('step 2 of 2')")
    assert page.locator("#modeler .djs-element[data-element-id='end_declined'].nf-done").count() == 1
    shot(page, "modeler-simulation")

    # many instances with random choices: counts per element on the diagram
    scenario.update(instances=20, seed=3)
    scenario["tasks"]["charge"] = [{"complete": {}}, {"error": {"code": "DECLINED"}}]
    page.fill("#sim-scenario", json.dumps(scenario))
    page.click("#sim-run")
    page.wait_for_selector("#sim-summary:has-text('20 instance(s), 20 completed')")
    page.click("#sim-frequencies")
    counts = {
        el: int(page.inner_text(f"#modeler .nf-heat[data-element='{el}']"))
        for el in ("StartEvent_1", task, end, "end_declined")
    }
    assert counts["StartEvent_1"] == counts[task] == 20
    assert counts[end] + counts["end_declined"] == 20 and 0 < counts[end] < 20

    # publish: deploy to NATS, export the Workflow resource
    xml = saved_xml(page)
    page.click("#modeler-deploy")
    page.wait_for_selector(f"#modeler-result a:has-text('{process_id} v1')")
    page.click("#modeler-export")
    exported = list(yaml.safe_load_all(page.inner_text("#workflow-yaml")))
    assert exported[0]["kind"] == "Workflow" and process_id in exported[0]["spec"]["bpmn"]

    # the saved XML: only BPMN and Zeebe elements, imported by bpmn-js without warnings, and it
    # runs unchanged in the test kit
    assert "camunda.org/schema/1.0/bpmn" not in xml
    assert 'zeebe:taskDefinition type="charge"' in xml
    assert import_warnings(page, xml) == []
    assert stack.run(_run_in_test_kit(xml, process_id), timeout=60) == ["StartEvent_1", task, "declined", "end_declined"]


async def _run_in_test_kit(xml: str, process_id: str) -> list[str]:
    from natsflow.errors import BpmnError

    async with ProcessTestEngine() as engine:
        await engine.deploy(xml)

        @engine.task("charge")
        async def charge(job: Any) -> None:
            raise BpmnError("DECLINED", "card declined")

        iid = await engine.start_instance(process_id, {"amount": 1})
        await engine.wait_until_idle()
        snap = await engine.instance(iid)
        assert snap.state == "completed"
        return [str(e.element_id) for e in snap.history if e.type == "element-activated" and e.ei != 1]


def test_the_panel_shows_feel_errors_and_offers_the_tenants_task_types(
    stack: Stack, tenants: dict[str, str], open_page: Open, tmp_path: Any
) -> None:
    tenant = tenants["alice"]
    stack.run(_declare_task_type(stack, tenant, "charge-card", "payments"))
    broken = approval("panel-broken").replace("=x &gt; 10", "=x &gt;&gt; ) 10")
    model = tmp_path / "broken.bpmn"
    model.write_text(broken)
    page = open_page(operator_token(tenant), "/modeler")
    page.wait_for_selector("#validation[data-state]")
    page.set_input_files("#modeler-file", str(model))
    page.wait_for_selector("#validation-issues li[data-element='f_big']")
    page.click("#validation-issues li[data-element='f_big'] a")  # selects the flow
    page.wait_for_selector(
        "#properties [data-entry-id='conditionExpression'] .bio-properties-panel-error", state="attached"
    )
    page.click("#properties .bio-properties-panel-group:has([data-entry-id='conditionExpression']) .bio-properties-panel-group-header")
    error = page.wait_for_selector("#properties [data-entry-id='conditionExpression'] .bio-properties-panel-error")
    assert "not a valid FEEL expression" in error.inner_text()
    shot(page, "modeler-feel-error")

    task = modeler(
        page,
        """(m) => {
            const start = m.get('elementRegistry').get('start');
            const task = m.get('modeling').appendShape(start, { type: 'bpmn:ServiceTask' }, { x: start.x + 60, y: start.y + 160 });
            m.get('selection').select(task);
            return task.id;
        }""",
    )
    page.wait_for_selector(f"#modeler .nf-error-badge[data-element='{task}']")
    header = page.locator("#properties [data-group-id='group-taskDefinition'] .bio-properties-panel-group-header")
    if "open" not in (header.get_attribute("class") or ""):
        header.click()
    field = page.wait_for_selector("#properties #bio-properties-panel-taskDefinitionType[list='nf-task-types']")
    assert field.is_visible()
    offered = page.eval_on_selector_all("#nf-task-types option", "options => options.map((o) => o.value)")
    assert "charge-card" in offered
    assert page.locator("#properties [data-entry-id='taskDefinitionType'] .bio-properties-panel-error").count() == 1


async def _declare_task_type(stack: Stack, tenant: str, task_type: str, name: str) -> None:
    from natsflow_engine import catalog, layout

    assert stack.nc is not None
    kv = await stack.nc.jetstream().key_value(layout.BUCKET_TASKDEFS)
    record = catalog.TaskDefRecord(
        tenant=tenant,
        task_type=task_type,
        name=name,
        consumer=layout.job_consumer(tenant, task_type),
        subject=layout.job_subject(tenant, task_type),
    )
    await kv.put(layout.taskdef_key(tenant, task_type), catalog.encode_record(record))


def test_a_deployed_version_opens_in_the_modeler(stack: Stack, tenants: dict[str, str], open_page: Open) -> None:
    tenant = tenants["alice"]
    process = f"reopen-{tenant}"
    stack.run(stack.api(tenant).deploy(approval(process), name="approval.bpmn"))
    page = open_page(operator_token(tenant), "/modeler")
    page.wait_for_selector(f"#modeler-open option[value='{process}@1']", state="attached")
    page.select_option("#modeler-open", f"{process}@1")
    page.wait_for_selector("#modeler .djs-element[data-element-id='approve']")
    page.wait_for_selector("#validation[data-state='valid']")
    assert page.inner_text("#validation") == f"✓ Valid: {process}"
    assert modeler(page, "(m) => m.getDefinitions().rootElements.find((e) => e.$type === 'bpmn:Process').id") == process


def test_input_mappings_that_do_not_fit_the_task_definition_are_warned_at_their_task(
    stack: Stack, tenants: dict[str, str], open_page: Open, tmp_path: Any
) -> None:
    from test_console_parameters import MODEL, _declare

    tenant = tenants["alice"]
    stack.run(_declare(stack, tenant))
    model = tmp_path / "params.bpmn"
    model.write_text(laid_out(MODEL, ["start", "wrong", "right", "free", "end"], ["f1", "f2", "f3", "f4"]))
    page = open_page(operator_token(tenant), "/modeler")
    page.wait_for_selector("#validation[data-state]")
    page.set_input_files("#modeler-file", str(model))
    page.wait_for_selector("#validation[data-state='valid'] #validation-warnings li[data-element='wrong']")
    warned = page.eval_on_selector_all(
        "#validation-warnings li", "items => items.map((li) => [li.dataset.element, li.textContent])"
    )
    assert {element for element, _ in warned} == {"wrong"}, warned
    texts = " ".join(text for _, text in warned)
    assert "requires the parameter 'currency'" in texts and "'regoin' is not a parameter" in texts
    badge = page.wait_for_selector("#modeler .nf-warning-badge[data-element='wrong']")
    assert badge.inner_text() == str(len(warned))
    assert page.locator("#modeler .nf-warning-badge[data-element='right']").count() == 0


def laid_out(xml: str, nodes: list[str], flows: list[str]) -> str:
    """``xml`` (one process, ``nodes`` in a row joined by ``flows``) with the diagram
    interchange a modeler needs to draw it."""
    process = xml.split('<bpmn:process id="', 1)[1].split('"', 1)[0]
    shapes = "".join(
        f'<bpmndi:BPMNShape id="{n}_di" bpmnElement="{n}"><dc:Bounds x="{100 + 150 * i}" y="100" width="100" height="80" />'
        "</bpmndi:BPMNShape>"
        for i, n in enumerate(nodes)
    )
    edges = "".join(
        f'<bpmndi:BPMNEdge id="{f}_di" bpmnElement="{f}"><di:waypoint x="{200 + 150 * i}" y="140" />'
        f'<di:waypoint x="{250 + 150 * i}" y="140" /></bpmndi:BPMNEdge>'
        for i, f in enumerate(flows)
    )
    diagram = (
        '<bpmndi:BPMNDiagram id="diagram" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"'
        ' xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI">'
        f'<bpmndi:BPMNPlane id="plane" bpmnElement="{process}">{shapes}{edges}</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>'
    )
    return xml.replace("</bpmn:definitions>", diagram + "</bpmn:definitions>")
