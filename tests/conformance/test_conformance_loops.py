"""Multi-instance (parallel, sequential, collections in and out, completion condition,
cardinality, empty input, on sub-processes and call activities, boundaries on the body) and
standard loops."""

from __future__ import annotations

from datetime import timedelta

from modelkit import boundary, chain, flow, model, service, timer

from natsflow.testing import ProcessTestEngine


def mi(task_id: str, task_type: str, *, sequential: bool, extra: str = "", completion: str | None = None) -> str:
    seq = ' isSequential="true"' if sequential else ""
    cond = (
        f'<bpmn:completionCondition xsi:type="bpmn:tFormalExpression">{completion}</bpmn:completionCondition>'
        if completion else ""
    )
    loop = (
        f"<bpmn:multiInstanceLoopCharacteristics{seq}><bpmn:extensionElements>"
        '<zeebe:loopCharacteristics inputCollection="=items" inputElement="item" outputCollection="results" '
        'outputElement="=done" /></bpmn:extensionElements>' + cond + "</bpmn:multiInstanceLoopCharacteristics>"
    )
    return (
        f'<bpmn:serviceTask id="{task_id}"><bpmn:extensionElements><zeebe:taskDefinition type="{task_type}" />'
        f"{extra}</bpmn:extensionElements>{loop}</bpmn:serviceTask>"
    )


async def run_mi(kit: ProcessTestEngine, checkpoint, *, sequential: bool, items: list[int], completion=None):
    body = '<bpmn:startEvent id="s" />' + mi("each", "each", sequential=sequential, completion=completion)
    body += '<bpmn:endEvent id="e" />' + chain("s", "each", "e")
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"items": items})
    await checkpoint()
    seen: list[tuple[int, int]] = []

    @kit.task("each")
    async def each(job):
        seen.append((job.variables["item"], job.variables["loopCounter"]))
        return {"done": job.variables["item"] * 10}

    await kit.wait_until_idle()
    return iid, seen


async def test_parallel_multi_instance_collects_outputs_in_input_order(kit, checkpoint):
    iid, seen = await run_mi(kit, checkpoint, sequential=False, items=[3, 1, 2])
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert sorted(seen) == [(1, 2), (2, 3), (3, 1)]
    assert snap.variables["results"] == [30, 10, 20]
    assert snap.completed_elements.count("each") == 4  # three iterations and the body


async def test_sequential_multi_instance_runs_one_after_another(kit, checkpoint):
    iid, seen = await run_mi(kit, checkpoint, sequential=True, items=[5, 6, 7])
    assert seen == [(5, 1), (6, 2), (7, 3)]
    assert (await kit.instance(iid)).variables["results"] == [50, 60, 70]


async def test_completion_condition_ends_remaining_iterations(kit, checkpoint):
    iid, seen = await run_mi(kit, checkpoint, sequential=True, items=[1, 2, 3, 4],
                             completion="=numberOfCompletedInstances >= 2")
    snap = await kit.instance(iid)
    assert seen == [(1, 1), (2, 2)]
    assert snap.state == "completed" and snap.variables["results"] == [10, 20, None, None]


async def test_empty_collection_completes_at_once(kit, checkpoint):
    iid, seen = await run_mi(kit, checkpoint, sequential=False, items=[])
    snap = await kit.instance(iid)
    assert seen == [] and snap.state == "completed" and snap.variables["results"] == []


async def test_cardinality_and_multi_instance_subprocess_with_boundary(kit, checkpoint):
    sub = (
        '<bpmn:subProcess id="sub"><bpmn:multiInstanceLoopCharacteristics>'
        '<bpmn:loopCardinality xsi:type="bpmn:tFormalExpression">=copies</bpmn:loopCardinality>'
        "</bpmn:multiInstanceLoopCharacteristics>"
        '<bpmn:startEvent id="ss" />' + service("print", "print") + '<bpmn:endEvent id="se" />'
        + chain("ss", "print", "se") + "</bpmn:subProcess>"
    )
    body = (
        '<bpmn:startEvent id="s" />' + sub + boundary("too_slow", "sub", timer("Duration", "PT5M"))
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_slow" />' + chain("s", "sub", "e") + flow("f", "too_slow", "e_slow")
    )
    await kit.deploy(model("p", body))
    fast = await kit.start_instance("p", {"copies": 3})
    printed = []

    @kit.task("print")
    async def print_(job):
        printed.append(job.variables["loopCounter"])

    await kit.wait_until_idle()
    await checkpoint()
    assert sorted(printed) == [1, 2, 3]
    assert (await kit.instance(fast)).state == "completed"


async def test_boundary_timer_on_multi_instance_body_interrupts_all_iterations(kit, checkpoint):
    body = (
        '<bpmn:startEvent id="s" />' + mi("each", "never", sequential=False)
        + boundary("late", "each", timer("Duration", "PT1H"))
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="e_late" />' + chain("s", "each", "e") + flow("f", "late", "e_late")
    )
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"items": [1, 2]})
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["each", "each", "each"]
    await kit.advance_time(timedelta(hours=1))
    snap = await kit.instance(iid)
    assert snap.completed_elements == ["s", "late", "e_late"]
    assert [e.element_id for e in snap.history if e.type == "element-terminated"].count("each") == 3


async def test_multi_instance_call_activity(kit, checkpoint):
    child = '<bpmn:startEvent id="cs" /><bpmn:scriptTask id="sq"><bpmn:extensionElements>' \
            '<zeebe:script expression="=item * item" resultVariable="sq" /></bpmn:extensionElements></bpmn:scriptTask>' \
            '<bpmn:endEvent id="ce" />' + chain("cs", "sq", "ce")
    call = (
        '<bpmn:callActivity id="call"><bpmn:extensionElements><zeebe:calledElement processId="square" />'
        '</bpmn:extensionElements><bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements>'
        '<zeebe:loopCharacteristics inputCollection="=items" inputElement="item" outputCollection="squares" '
        'outputElement="=sq" /></bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics></bpmn:callActivity>'
    )
    await kit.deploy(model("square", child))
    await kit.deploy(model("p", '<bpmn:startEvent id="s" />' + call + '<bpmn:endEvent id="e" />' + chain("s", "call", "e")))
    iid = await kit.start_instance("p", {"items": [2, 3, 4]})
    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.variables["squares"] == [4, 9, 16]
    assert len(await kit.instances("square")) == 3


async def test_standard_loop_repeats_until_condition_false(kit, checkpoint):
    task = (
        '<bpmn:serviceTask id="poll"><bpmn:extensionElements><zeebe:taskDefinition type="poll" />'
        '</bpmn:extensionElements><bpmn:standardLoopCharacteristics testBefore="false" loopMaximum="10">'
        '<bpmn:loopCondition xsi:type="bpmn:tFormalExpression">=not(ready)</bpmn:loopCondition>'
        "</bpmn:standardLoopCharacteristics></bpmn:serviceTask>"
    )
    await kit.deploy(model("p", '<bpmn:startEvent id="s" />' + task + '<bpmn:endEvent id="e" />' + chain("s", "poll", "e")))
    iid = await kit.start_instance("p", {"ready": False})
    await checkpoint()
    polls = []

    @kit.task("poll")
    async def poll(job):
        polls.append(job.variables["loopCounter"])
        return {"ready": len(polls) >= 3}

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert polls == [1, 2, 3] and snap.state == "completed"
