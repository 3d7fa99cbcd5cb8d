"""Messages (catch, receive task, boundary, event sub-process, start event, buffering with a
TTL) and signals (catch, boundary, throw, end, start), with Zeebe semantics."""

from __future__ import annotations

from datetime import timedelta

from modelkit import (
    boundary,
    chain,
    event,
    flow,
    message_def,
    message_global,
    model,
    service,
    signal_def,
    signal_global,
    user_task,
)

from natsflow.testing import ProcessTestEngine

PAID = message_global("Msg_paid", "payment-received")


async def test_intermediate_message_catch_correlates_by_key(kit: ProcessTestEngine, checkpoint):
    body = '<bpmn:startEvent id="s" />' + event("intermediateCatchEvent", "paid", message_def("Msg_paid"))
    body += '<bpmn:endEvent id="e" />' + chain("s", "paid", "e")
    await kit.deploy(model("p", body, globals_=PAID))
    a = await kit.start_instance("p", {"orderId": "A"})
    b = await kit.start_instance("p", {"orderId": "B"})
    await checkpoint()
    assert await kit.publish_message("payment-received", correlation_key="B", variables={"amount": 10}) == 1
    assert (await kit.instance(a)).state == "active"
    snap = await kit.instance(b)
    assert snap.state == "completed" and snap.variables == {"orderId": "B", "amount": 10}
    assert await kit.publish_message("payment-received", correlation_key="nobody") == 0


async def test_receive_task(kit, checkpoint):
    body = '<bpmn:startEvent id="s" /><bpmn:receiveTask id="recv" messageRef="Msg_paid" /><bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "recv", "e"), globals_=PAID))
    iid = await kit.start_instance("p", {"orderId": 7})  # a number key is matched as its string
    await checkpoint()
    await kit.publish_message("payment-received", correlation_key="7")
    assert (await kit.instance(iid)).completed_elements == ["s", "recv", "e"]


async def test_buffered_message_waits_for_its_subscriber(kit, checkpoint):
    body = '<bpmn:startEvent id="s" />' + user_task("first") + event("intermediateCatchEvent", "paid", message_def("Msg_paid"))
    body += '<bpmn:endEvent id="e" />' + chain("s", "first", "paid", "e")
    await kit.deploy(model("p", body, globals_=PAID))
    iid = await kit.start_instance("p", {"orderId": "A"})
    await checkpoint()
    # arrives before the instance reaches the catch: kept for its TTL
    assert await kit.publish_message("payment-received", correlation_key="A", ttl=timedelta(hours=1),
                                     variables={"early": True}) == 0
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.variables["early"] is True


async def test_message_without_ttl_is_not_buffered(kit, checkpoint):
    body = '<bpmn:startEvent id="s" />' + user_task("first") + event("intermediateCatchEvent", "paid", message_def("Msg_paid"))
    body += '<bpmn:endEvent id="e" />' + chain("s", "first", "paid", "e")
    await kit.deploy(model("p", body, globals_=PAID))
    iid = await kit.start_instance("p", {"orderId": "A"})
    await kit.publish_message("payment-received", correlation_key="A")
    await checkpoint()
    [task] = await kit.user_tasks(iid)
    await kit.complete_user_task(task.id)
    assert (await kit.instance(iid)).active_elements == ["paid"]


async def test_interrupting_and_non_interrupting_message_boundaries(kit, checkpoint):
    cancel = message_global("Msg_cancel", "cancel-order")
    note = message_global("Msg_note", "customer-note")
    body = (
        '<bpmn:startEvent id="s" />' + user_task("pack")
        + boundary("cancelled", "pack", message_def("Msg_cancel"))
        + boundary("noted", "pack", message_def("Msg_note"), interrupting=False)
        + service("log", "log-note")
        + '<bpmn:endEvent id="done" /><bpmn:endEvent id="e_cancel" /><bpmn:endEvent id="e_note" />'
        + chain("s", "pack", "done") + flow("f1", "cancelled", "e_cancel") + flow("f2", "noted", "log")
        + flow("f3", "log", "e_note")
    )
    await kit.deploy(model("p", body, globals_=cancel + note))
    notes = []

    @kit.task("log-note")
    async def log_note(job):
        notes.append(job.variables["text"])

    iid = await kit.start_instance("p", {"orderId": "A"})
    await checkpoint()
    await kit.publish_message("customer-note", correlation_key="A", variables={"text": "ring twice"})
    await kit.publish_message("customer-note", correlation_key="A", variables={"text": "leave at door"})
    await checkpoint()
    assert notes == ["ring twice", "leave at door"]
    assert (await kit.instance(iid)).active_elements == ["pack"]
    await kit.publish_message("cancel-order", correlation_key="A")
    snap = await kit.instance(iid)
    assert snap.state == "completed"
    assert snap.completed_elements[-2:] == ["cancelled", "e_cancel"]
    assert await kit.user_tasks(iid) == []


async def test_message_event_subprocess(kit, checkpoint):
    upd = message_global("Msg_upd", "address-changed")
    esp = (
        '<bpmn:subProcess id="on_update" triggeredByEvent="true">'
        + event("startEvent", "us", message_def("Msg_upd"), 'isInterrupting="false"')
        + '<bpmn:endEvent id="ue" />' + chain("us", "ue") + "</bpmn:subProcess>"
    )
    body = '<bpmn:startEvent id="s" />' + user_task("ship") + '<bpmn:endEvent id="e" />' + chain("s", "ship", "e") + esp
    await kit.deploy(model("p", body, globals_=upd))
    iid = await kit.start_instance("p", {"orderId": "A"})
    await checkpoint()
    await kit.publish_message("address-changed", correlation_key="A", variables={"address": "Elm St 1"})
    snap = await kit.instance(iid)
    assert snap.state == "active" and snap.variables["address"] == "Elm St 1"
    assert snap.completed_elements == ["s", "us", "ue", "on_update"]


async def test_message_start_event_starts_one_instance_per_message(kit, checkpoint):
    order = message_global("Msg_order", "order-placed", key="=orderId")
    body = event("startEvent", "s", message_def("Msg_order")) + '<bpmn:endEvent id="e" />' + chain("s", "e")
    await kit.deploy(model("p", body, globals_=order))
    await checkpoint()
    assert await kit.publish_message("order-placed", variables={"orderId": "X"}, message_id="m1") == 1
    assert await kit.publish_message("order-placed", variables={"orderId": "Y"}, message_id="m2") == 1
    await kit.publish_message("order-placed", variables={"orderId": "X"}, message_id="m1")  # same message again
    ids = await kit.instances("p")
    assert len(ids) == 2
    snaps = [await kit.instance(i) for i in ids]
    assert sorted(s.variables["orderId"] for s in snaps) == ["X", "Y"]
    assert all(s.completed_elements == ["s", "e"] for s in snaps)


SIGNAL = signal_global("Sig_stop", "stop-all")


async def test_signal_reaches_every_waiting_catch_and_boundary(kit, checkpoint):
    catch = '<bpmn:startEvent id="s" />' + event("intermediateCatchEvent", "c", signal_def("Sig_stop"))
    catch += '<bpmn:endEvent id="e" />' + chain("s", "c", "e")
    bnd = (
        '<bpmn:startEvent id="s" />' + user_task("work") + boundary("halt", "work", signal_def("Sig_stop"))
        + '<bpmn:endEvent id="e" /><bpmn:endEvent id="halted" />' + chain("s", "work", "e") + flow("f", "halt", "halted")
    )
    await kit.deploy(model("catcher", catch, globals_=SIGNAL))
    await kit.deploy(model("worker", bnd, globals_=SIGNAL))
    c1, c2 = await kit.start_instance("catcher"), await kit.start_instance("catcher")
    w = await kit.start_instance("worker")
    await checkpoint()
    assert await kit.broadcast_signal("stop-all", variables={"why": "maintenance"}) == 3
    for iid in (c1, c2):
        snap = await kit.instance(iid)
        assert snap.state == "completed" and snap.variables == {"why": "maintenance"}
    assert (await kit.instance(w)).completed_elements == ["s", "halt", "halted"]


async def test_signal_throw_and_end_events_and_signal_start(kit, checkpoint):
    go = signal_global("Sig_go", "go")
    started = event("startEvent", "ss", signal_def("Sig_go")) + '<bpmn:endEvent id="se" />' + chain("ss", "se")
    thrower = (
        '<bpmn:startEvent id="s" />' + event("intermediateThrowEvent", "throw", signal_def("Sig_go"))
        + event("endEvent", "end", signal_def("Sig_go")) + chain("s", "throw", "end")
    )
    await kit.deploy(model("listener", started, globals_=go))
    await kit.deploy(model("thrower", thrower, globals_=go))
    await checkpoint()
    t = await kit.start_instance("thrower")
    await kit.wait_until_idle()
    assert (await kit.instance(t)).completed_elements == ["s", "throw", "end"]
    assert len(await kit.instances("listener")) == 2  # the throw and the end event each started one


async def test_message_start_with_correlation_key_allows_one_active_instance_per_key(kit, checkpoint):
    order = message_global("Msg_order", "order-placed", key="=orderId")
    body = event("startEvent", "s", message_def("Msg_order")) + user_task("handle") + '<bpmn:endEvent id="e" />'
    await kit.deploy(model("p", body + chain("s", "handle", "e"), globals_=order))
    assert await kit.publish_message("order-placed", correlation_key="X", variables={"n": 1}) == 1
    await checkpoint()
    assert await kit.publish_message("order-placed", correlation_key="X", variables={"n": 2}) == 0
    assert await kit.publish_message("order-placed", correlation_key="Y", variables={"n": 3}) == 1
    [first] = [i for i in await kit.instances("p") if (await kit.instance(i)).variables["n"] == 1]
    [task] = await kit.user_tasks(first)
    await kit.complete_user_task(task.id)
    assert await kit.publish_message("order-placed", correlation_key="X", variables={"n": 4}) == 1
    assert len(await kit.instances("p")) == 3
