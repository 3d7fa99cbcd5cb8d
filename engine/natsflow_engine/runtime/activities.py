"""Activities: input mappings, jobs, user tasks, scripts, call activities, sub-processes, and
completing an element instance (result variables, output mappings, outgoing flows)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from natsflow_engine.bpmn.instantiate import instantiate_flow
from natsflow_engine.bpmn.model import Activity, CallActivity, Event, FlowNode, ScriptTask, SubProcess
from natsflow_engine.errors import NatsflowError
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime import waits as w
from natsflow_engine.runtime.context import Part
from natsflow_engine.runtime.expressions import str_list
from natsflow_engine.runtime.scopes import ROOT, context_of, propagate
from natsflow_engine.runtime.timers import to_rfc3339

__all__ = ["Activities"]

MAX_RETRY_BACKOFF = 7 * 24 * 3600.0
"""The longest back-off a worker may ask for before a job's next attempt (seconds)."""

_PASS_THROUGH = frozenset({"task", "manualTask", "intermediateThrowEvent", "endEvent"})


class Activities(Part):
    __slots__ = ()

    def enter_activity(self, node: Activity | Event, scope: int, flow: str | None) -> None:
        c = self.c
        if isinstance(node, Activity) and (node.multi_instance is not None or node.loop is not None):
            c.loops.enter_body(node, scope, flow)
            return
        ei = c.new_ei(node, scope, flow)
        c.event("element-activated", node.id, ei.key)
        if not c.events.arm_boundaries(ei, node):
            return
        self.start_activity(ei, node)

    def start_activity(self, ei: r.ElementInstance, node: Activity | Event) -> None:
        """Input mappings, then the activity's own behaviour."""
        try:
            if node.inputs:
                local = self.c.x.mappings(node.inputs, context_of(self.s, ei.parent if ei.vars is None else ei.key))
                ei.vars = {**(ei.vars or {}), **local}
        except NatsflowError as exc:
            self.c.raise_incident(ei, "expression", f"input mapping failed: {exc}")
            return
        self._activate(ei, node)

    def _activate(self, ei: r.ElementInstance, node: Activity | Event) -> None:
        c = self.c
        kind = node.kind
        if node.task is not None:
            self.create_job(ei, node)
        elif isinstance(node, ScriptTask) and node.script is not None:
            try:
                value = c.x.json(node.script, context_of(self.s, ei.key))
            except NatsflowError as exc:
                c.raise_incident(ei, "expression", f"script failed: {exc}")
                return
            self.complete_with(ei, {node.result_variable: value} if node.result_variable else {})
        elif kind == "userTask":
            self._create_user_task(ei, node)
        elif kind == "receiveTask" and ei.flow == instantiate_flow(node.id):
            self.complete_with(ei, {})  # its message started the instance
        elif kind == "receiveTask":
            c.events.arm(ei, getattr(node, "message", None), ei.key)
        elif kind == "sendTask":  # no job type: it sends its message flows' messages
            if c.events.send_message_flows(node, ei.parent):
                self.complete_with(ei, {})
        elif isinstance(node, CallActivity):
            self._call(ei, node)
        elif isinstance(node, SubProcess) and node.ad_hoc is not None:
            c.adhocs.start(ei, node)
        elif isinstance(node, SubProcess):
            if not node.start_events:
                c.raise_incident(ei, "no-flow", f"sub-process '{node.id}' has no none start event")
                return
            if ei.vars is None:
                ei.vars = {}
            c.events.arm_event_subprocesses(ei, node.event_subprocesses)
            c.tokens.enqueue_enter(node.start_events[0], ei.key, None)
        elif kind in _PASS_THROUGH:
            self.complete_with(ei, {})
        else:  # pragma: no cover - refused at deploy by the support check
            c.raise_incident(ei, "engine", f"element kind '{kind}' is not supported")

    def create_job(self, ei: r.ElementInstance, node: FlowNode, attempt: int = 1) -> None:
        c = self.c
        task = getattr(node, "task", None)
        assert task is not None
        ctx = context_of(self.s, ei.key)
        try:
            job_type = c.x.text(task.type, ctx, "job type")
            retries = ei.retries if ei.retries is not None else int(c.x.value(task.retries, ctx))
        except (NatsflowError, ValueError, TypeError) as exc:
            c.raise_incident(ei, "expression", f"task definition failed: {exc}", phase="job")
            return
        ei.retries = retries
        job = r.Job(
            key=f"{self.s.id}.{ei.key}.{ei.attempt}",
            tenant=self.s.tenant,
            instance=self.s.id,
            process_id=self.s.process_id,
            version=self.s.version,
            element_id=node.id,
            ei=ei.key,
            type=job_type,
            retries=retries,
            headers=dict(getattr(node, "headers", {}) or {}),
            variables=dict(ctx),
            created=c.at,
            attempt=attempt,
        )
        ei.wait = w.JobWait(key=job.key, type=job_type, attempt=attempt)
        c.effects.append(job)
        c.event("job-created", node.id, ei.key, job=job.key, type=job_type)

    def retry_job(self, ei: r.ElementInstance, failed: r.JobFailed) -> None:
        """A worker failed the job with retries left (Zeebe): create it again after the
        back-off, on the step's clock (a timer, so the test kit's virtual clock skips it).
        A worker can only count retries down and wait at most ``MAX_RETRY_BACKOFF``."""
        c = self.c
        attempt = (ei.wait.attempt if isinstance(ei.wait, w.JobWait) else 1) + 1
        ei.retries = min(failed.retries, max(0, (ei.retries or 1) - 1))
        ei.attempt += 1
        c.event("job-failed", ei.el, ei.key, job=failed.job, retries=ei.retries, message=failed.message)
        backoff = min(max(failed.backoff, 0.0), MAX_RETRY_BACKOFF)
        if backoff == 0.0:
            self.create_job(ei, self.p.nodes[ei.el], attempt)
            return
        due = to_rfc3339(c.x.now + timedelta(seconds=backoff))
        timer = f"{self.s.id}.{ei.key}.r{ei.attempt}"
        ei.wait = w.RetryWait(timer=timer, due=due, attempt=attempt)
        c.effects.append(r.TimerSpec(id=timer, tenant=self.s.tenant, instance=self.s.id, ei=ei.key, due=due))

    def _create_user_task(self, ei: r.ElementInstance, node: Activity | Event) -> None:
        c = self.c
        spec = getattr(node, "user_task", None)
        ctx = context_of(self.s, ei.key)
        task_id = f"{self.s.id}.{ei.key}"
        try:
            assignee = c.x.optional_json(spec.assignee, ctx) if spec else None
            groups = c.x.optional_json(spec.candidate_groups, ctx) if spec else None
            users = c.x.optional_json(spec.candidate_users, ctx) if spec else None
            due = c.x.optional_json(spec.due_date, ctx) if spec else None
            follow = c.x.optional_json(spec.follow_up_date, ctx) if spec else None
        except NatsflowError as exc:
            c.raise_incident(ei, "expression", f"user task assignment failed: {exc}")
            return
        task = r.UserTask(
            id=task_id,
            tenant=self.s.tenant,
            instance=self.s.id,
            process_id=self.s.process_id,
            element_id=node.id,
            ei=ei.key,
            name=node.name,
            assignee=None if assignee is None else str(assignee),
            candidate_groups=str_list(groups),
            candidate_users=str_list(users),
            due_date=None if due is None else str(due),
            follow_up_date=None if follow is None else str(follow),
            form_key=spec.form_key if spec else None,
            form_id=spec.form_id if spec else None,
            variables=dict(ctx),
            created=c.at,
        )
        ei.wait = w.UserTaskWait(task=task_id)
        c.effects.append(task)
        c.event("user-task-created", node.id, ei.key, task=task_id, assignee=task.assignee)

    def _call(self, ei: r.ElementInstance, node: CallActivity) -> None:
        c = self.c
        ctx = context_of(self.s, ei.key)
        try:
            process_id = c.x.value(node.called_element, ctx)
            if not isinstance(process_id, str) or not process_id:
                raise NatsflowError(f"called element expression gave {process_id!r}, not a process id")
        except NatsflowError as exc:
            c.raise_incident(ei, "expression", f"call activity failed: {exc}")
            return
        depth = (self.s.parent.depth if self.s.parent else 0) + 1
        if depth > c.limits.max_call_depth:
            c.raise_incident(
                ei, "call-depth", f"call depth would be {depth}; the limit is {c.limits.max_call_depth} "
                "(a process that calls itself, directly or through others?)", phase="enter"
            )
            return
        variables = dict(ctx) if node.propagate_all_parent_variables else dict(ei.vars or {})
        child = "c" + hashlib.sha256(f"{self.s.id}/{ei.key}/{ei.attempt}".encode()).hexdigest()[:31]
        ei.wait = w.ChildCall(child=child)
        c.effects.append(
            r.Launch(
                id=f"launch.{child}",
                tenant=self.s.tenant,
                instance=child,
                process_id=process_id,
                variables=variables,
                parent=r.ParentRef(
                    tenant=self.s.tenant, instance=self.s.id, ei=ei.key, element_id=node.id, depth=depth
                ),
            )
        )
        c.event("child-launched", node.id, ei.key, child=child, process=process_id)

    def child_finished(self, ei: r.ElementInstance, cmd: r.ChildFinished) -> None:
        """The instance a call activity launched has ended."""
        node = self.p.nodes[ei.el]
        if cmd.state == "escalation":  # the called instance goes on
            self.c.events.escalation_from_child(ei, cmd.error_code or "")
            return
        ei.wait = None
        if cmd.state == "completed":
            keep_all = getattr(node, "propagate_all_child_variables", True)
            self.complete_with(ei, cmd.variables if keep_all or getattr(node, "outputs", ()) else {})
        elif cmd.state == "error":
            self.c.tokens.throw_error(ei, cmd.error_code or "", cmd.error_message, {})
        elif cmd.state == "failed":
            self.c.raise_incident(
                ei, "child-failed", f"the called instance {cmd.child} could not start: {cmd.error_message}",
                phase="enter",
            )
        else:
            self.c.raise_incident(
                ei, "child-cancelled", f"the called instance {cmd.child} was cancelled", phase="enter"
            )

    def complete_with(self, ei: r.ElementInstance, variables: Mapping[str, Any]) -> None:
        """Complete an element instance: merge result variables, apply output mappings, leave."""
        c = self.c
        node = self.p.nodes[ei.el] if ei.key != ROOT else None
        if node is None:
            return
        outputs = getattr(node, "outputs", ())
        try:
            if outputs:
                if variables:
                    ei.vars = {**(ei.vars or {}), **variables}
                propagate(self.s, ei.parent, c.x.mappings(outputs, context_of(self.s, ei.key)))
            elif variables:
                propagate(self.s, ei.key, variables)
        except NatsflowError as exc:
            c.raise_incident(ei, "expression", f"output mapping failed: {exc}", phase="complete")
            return
        c.events.close_listeners(ei.key)
        c.tokens.terminate_children(ei.key)  # leftovers of a scope (none in a clean finish)
        c.drop_ei(ei.key)
        c.event("element-completed", node.id, ei.key)
        c.compensation.record(node, ei)
        if isinstance(ei.role, w.Iteration):
            c.loops.iteration_completed(ei, ei.role)
        elif isinstance(ei.role, w.CompensationHandler):
            c.compensation.handler_done(ei.role)
        else:
            c.tokens.leave(node, ei.parent, ei.parent)
