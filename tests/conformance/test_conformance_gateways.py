"""Complex gateways, conditional and default flows out of activities, conditions on a parallel
gateway (ignored, as the specification says)."""

from __future__ import annotations

from modelkit import chain, flow, model, service

from natsflow.testing import ProcessTestEngine


def _complex_join(activation: str) -> str:
    return (
        '<bpmn:complexGateway id="join">'
        f'<bpmn:activationCondition xsi:type="bpmn:tFormalExpression">{activation}</bpmn:activationCondition>'
        "</bpmn:complexGateway>"
    )


DISCRIMINATOR = (
    '<bpmn:startEvent id="s" /><bpmn:complexGateway id="split" />'
    + service("a", "a") + service("b", "b") + service("c", "c") + _complex_join("activationCount &gt;= 2")
    + service("after", "after") + '<bpmn:endEvent id="e" />'
    + flow("f0", "s", "split") + flow("fa", "split", "a", "=contains(want, \"a\")")
    + flow("fb", "split", "b", "=contains(want, \"b\")") + flow("fc", "split", "c", "=contains(want, \"c\")")
    + flow("fa2", "a", "join") + flow("fb2", "b", "join") + flow("fc2", "c", "join") + chain("join", "after", "e")
)  # fmt: skip


async def test_complex_gateway_fires_on_its_activation_condition_and_consumes_the_rest(
    kit: ProcessTestEngine, checkpoint
):
    await kit.deploy(model("p", DISCRIMINATOR))
    iid = await kit.start_instance("p", {"want": "abc"})
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["a", "b", "c"]  # split like an inclusive gateway
    ran: list[str] = []
    for name in ("a", "b", "after"):

        @kit.task(name)
        async def work(job, name=name):
            ran.append(name)
            return None

    await kit.wait_until_idle()
    await checkpoint()
    snap = await kit.instance(iid)
    # two tokens arrived: activationCount >= 2 held, 'after' ran once; c's token is still to come
    assert ran.count("after") == 1 and snap.completed_elements.count("join") == 1
    assert snap.state == "active" and snap.active_elements == ["c"]

    @kit.task("c")
    async def c(job):
        ran.append("c")
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    # the late token is consumed while the gateway waits for reset: 'after' does not run again
    assert snap.state == "completed" and ran.count("after") == 1
    assert snap.completed_elements.count("join") == 1


async def test_complex_gateway_resets_when_no_other_token_can_arrive(kit: ProcessTestEngine, checkpoint):
    await kit.deploy(model("p", DISCRIMINATOR.replace("activationCount &gt;= 2", "activationCount &gt;= 1")))
    for name in ("a", "b", "after"):

        @kit.task(name)
        async def work(job):
            return None

    only_a = await kit.start_instance("p", {"want": "a"})
    both = await kit.start_instance("p", {"want": "ab"})
    await kit.wait_until_idle()
    await checkpoint()
    for iid in (only_a, both):
        snap = await kit.instance(iid)
        assert snap.state == "completed" and snap.completed_elements.count("after") == 1
    nothing = await kit.start_instance("p", {"want": "x"})
    await kit.wait_until_idle()
    [incident] = (await kit.instance(nothing)).incidents
    assert incident.kind == "no-flow" and "complex gateway 'split'" in incident.message


async def test_complex_gateway_without_activation_condition_joins_like_an_inclusive_one(
    kit: ProcessTestEngine, checkpoint
):
    body = DISCRIMINATOR.replace(_complex_join("activationCount &gt;= 2"), '<bpmn:complexGateway id="join" />')
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p", {"want": "ab"})
    await checkpoint()

    @kit.task("a")
    async def a(job):
        return None

    @kit.task("after")
    async def after(job):
        return None

    await kit.wait_until_idle()
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["b"]  # waits: b can still arrive

    @kit.task("b")
    async def b(job):
        return None

    await kit.wait_until_idle()
    snap = await kit.instance(iid)
    assert snap.state == "completed" and snap.completed_elements.count("after") == 1


async def test_flows_out_of_an_activity_conditional_unconditional_and_default(kit: ProcessTestEngine, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:task id="t" default="f_def" />'
        + service("always", "w") + service("when_a", "w") + service("otherwise", "w")
        + '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" /><bpmn:endEvent id="e3" />'
        + flow("f0", "s", "t") + flow("f_always", "t", "always") + flow("f_a", "t", "when_a", "=x = \"a\"")
        + flow("f_def", "t", "otherwise")
        + chain("always", "e1") + chain("when_a", "e2") + chain("otherwise", "e3")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    a = await kit.start_instance("p", {"x": "a"})
    b = await kit.start_instance("p", {"x": "b"})
    await checkpoint()
    assert (await kit.instance(a)).active_elements == ["always", "when_a"]
    # the default flow is taken when no conditional flow is true, unconditional ones aside
    assert (await kit.instance(b)).active_elements == ["always", "otherwise"]


async def test_conditions_on_a_parallel_split_are_ignored(kit: ProcessTestEngine, checkpoint):
    body = (
        '<bpmn:startEvent id="s" /><bpmn:parallelGateway id="fork" />'
        + service("one", "w") + service("two", "w") + '<bpmn:endEvent id="e1" /><bpmn:endEvent id="e2" />'
        + flow("f0", "s", "fork") + flow("f1", "fork", "one", "=false") + flow("f2", "fork", "two")
        + chain("one", "e1") + chain("two", "e2")
    )  # fmt: skip
    await kit.deploy(model("p", body))
    iid = await kit.start_instance("p")
    await checkpoint()
    assert (await kit.instance(iid)).active_elements == ["one", "two"]
