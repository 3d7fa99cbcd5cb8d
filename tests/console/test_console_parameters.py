"""Validate-while-drawing checks a task's input mappings against its TaskDefinition's declared
parameters: a missing required one, an unknown target, a literal of another type; as warnings
at the element, leaving the model valid."""

from __future__ import annotations

from console_kit import Stack, operator_token
from natsflow_engine import catalog, layout
from test_console_http import call

MODEL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" id="d" targetNamespace="t">
  <bpmn:process id="params" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wrong" />
    <bpmn:serviceTask id="wrong">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="param-charge" />
        <zeebe:ioMapping>
          <zeebe:input source="=&quot;ten&quot;" target="amount" />
          <zeebe:input source="=region" target="regoin" />
          <zeebe:input source="=true" target="express" />
          <zeebe:input source="=order.id" target="reference" />
        </zeebe:ioMapping>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="wrong" targetRef="right" />
    <bpmn:serviceTask id="right">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="param-charge" />
        <zeebe:ioMapping>
          <zeebe:input source="=10.5" target="amount" />
          <zeebe:input source="EUR" target="currency" />
          <zeebe:input source="={id: 1}" target="meta" />
          <zeebe:input source="=x" target="reference" />
        </zeebe:ioMapping>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f3" sourceRef="right" targetRef="free" />
    <bpmn:serviceTask id="free">
      <bpmn:extensionElements>
        <zeebe:taskDefinition type="param-undeclared" />
        <zeebe:ioMapping><zeebe:input source="=1" target="anything" /></zeebe:ioMapping>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f4" sourceRef="free" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _param(name: str, kind: str, required: bool = False) -> catalog.ParameterRecord:
    return catalog.ParameterRecord(name=name, type=kind, required=required)


async def _declare(stack: Stack, tenant: str) -> None:
    assert stack.nc is not None
    kv = await stack.nc.jetstream().key_value(layout.BUCKET_TASKDEFS)
    for task_type, params in (
        (
            "param-charge",
            [
                _param("amount", "number", required=True),
                _param("currency", "string", required=True),
                _param("express", "boolean"),
                _param("meta", "object"),
                _param("reference", "any"),
            ],
        ),
        ("param-undeclared", []),
    ):
        record = catalog.TaskDefRecord(
            tenant=tenant,
            task_type=task_type,
            name=task_type,
            consumer=layout.job_consumer(tenant, task_type),
            subject=layout.job_subject(tenant, task_type),
            parameters=params,
            results=[_param("paymentId", "string")] if params else [],
        )
        await kv.put(layout.taskdef_key(tenant, task_type), catalog.encode_record(record))


def test_input_mappings_are_checked_against_declared_parameters(stack: Stack, tenants: dict[str, str]) -> None:
    tenant = tenants["alice"]
    stack.run(_declare(stack, tenant))
    token = operator_token(tenant)
    status, reply = call(stack, "POST", "/api/validate", token, {"source": MODEL})
    assert status == 200 and reply["valid"] is True and reply["issues"] == []
    assert reply["warnings"] == [
        {
            "element_id": "wrong",
            "message": "input mapping 'amount' of job type 'param-charge' is a number, but its source '=\"ten\"' is a string",
        },
        {
            "element_id": "wrong",
            "message": "input mapping target 'regoin' is not a parameter of job type 'param-charge' "
            "(its parameters: amount, currency, express, meta, reference)",
        },
        {
            "element_id": "wrong",
            "message": "job type 'param-charge' requires the parameter 'currency': no input mapping targets it",
        },
    ]

    status, listed = call(stack, "GET", "/api/task-types", token)
    assert status == 200
    [charge] = [t for t in listed["task_types"] if t["task_type"] == "param-charge"]
    assert charge["parameters"][0] == {"name": "amount", "type": "number", "required": True}
    assert charge["results"] == [{"name": "paymentId", "type": "string"}]


def test_a_model_of_another_tenant_sees_none_of_these_parameters(stack: Stack, tenants: dict[str, str]) -> None:
    stack.run(_declare(stack, tenants["alice"]))
    status, reply = call(stack, "POST", "/api/validate", operator_token(tenants["bob"]), {"source": MODEL})
    assert status == 200 and reply["warnings"] == []
