"""Run betsy's BPMN conformance cases on natsflow: the one place that translates betsy to us.

betsy (github.com/uniba-dsg/betsy, LGPL-3.0) is not vendored: set ``NATSFLOW_BETSY_DIR`` to a
checkout (or an extract holding ``pebl-builder/src/main``) and the cases run; without it the
test skips. Nothing here is an engine feature: the engine learns no other expression language
and no betsy-specific behaviour.

What the adapter reads from betsy:

* the cases: ``pebl-builder/src/main/java/configuration/bpmn/*Processes.java``. Every
  ``public static final Test X = BPMNProcessBuilder.buildYProcess(...)`` listed in the file's
  ``List<Test>`` is a test; each ``new BPMNTestCaseBuilder()...`` chain in it is one case (its
  number is its position, from 1), exactly as betsy's ``BPMNProcessBuilder.convert`` numbers
  them. The chain's calls are the inputs and the expected log (``BPMNTestCaseBuilder``).
* the models: ``pebl-builder/src/main/resources/files/bpmn/<folder>/<name>.bpmn``.

How betsy's engine-specific parts are translated (betsy does the same per engine with XSLT,
``src/main/xslt/bpmn/scriptTask.xsl``):

* A script task's script is a token. Every script task becomes a job of type ``betsy-script``
  with the token as header ``script``; the adapter's handler plays betsy's script: it appends
  the token to the case's log (``SCRIPT_task1`` ...), or for the special tokens:
  ``CREATE_LOG_FILE`` nothing; ``CREATE_MARKER_FILE`` leaves a marker (``MARKER_exists`` at the
  end); ``SET_STRING_DATA`` sets ``data`` to ``"String"``; ``LOG_DATA`` records ``data``
  (``DATA_correct`` at the end when it was ``"String"``); ``THROW_ERROR`` throws the BPMN
  error ``ERR_CODE``; ``INCREMENT_INTEGER_VARIABLE`` adds one to ``integerVariable``, and
  ``..._AND_LOG`` also logs ``INCREMENT_correct``; ``CREATE_TIMESTAMP_LOG_1``/``_2`` each
  wait for the other to start (``EXECUTION_parallel`` when both ran at once).
  ``WAIT_TEN_SECONDS`` (a script sleeping ten seconds) becomes a ten-second timer catch event
  with the same id: time in the test kit is virtual.
* Conditions (``conditionExpression``, ``condition``, ``loopCondition``,
  ``activationCondition``, ``completionCondition``, ``loopCardinality``) are Java/JUEL; they
  become FEEL by :func:`to_feel`, which knows the few forms betsy uses.
* A case starts ``ParallelProcess`` first when it asks for it, then its own process with the
  variables ``test`` (its input), ``integerVariable`` and ``testCaseNumber``; the virtual clock
  then moves by the case's delay (timers fire on the way).
* Outcomes become betsy's log lines as its ``GenericBPMNTester`` writes them: a model refused at
  deploy is ``ERROR_deployment``; a start refused, or an incident on any instance, is
  ``ERROR_runtime``, except an uncaught error thrown by the model (``ERROR_thrownErrorEvent``);
  when the case expects the generic ``ERROR``, deployment and runtime errors are logged as it.

The logs are compared as betsy's generated JUnit test does: sorted, as lists.
"""

from __future__ import annotations

import asyncio
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from natsflow import BpmnError
from natsflow.errors import BpmnValidationError, NatsflowError
from natsflow.testing import ProcessTestEngine

__all__ = ["BetsyCase", "betsy_root", "load_cases", "run_case", "to_feel", "translate_model"]

ENV = "NATSFLOW_BETSY_DIR"
JAVA = Path("pebl-builder/src/main/java/configuration/bpmn")
MODELS = Path("pebl-builder/src/main/resources/files/bpmn")
FOLDERS = {
    "Activity": "activities", "Gateway": "gateways", "Error": "errors", "Event": "events",
    "Basic": "basics", "Data": "data", "Pattern": "cfpatterns",
}  # fmt: skip
INPUTS = {"inputA": "a", "inputB": "b", "inputC": "c", "inputAB": "ab", "inputAC": "ac",
          "inputBC": "bc", "inputABC": "abc"}  # fmt: skip
ASSERTIONS = {
    "assertTask1": "SCRIPT_task1", "assertTask2": "SCRIPT_task2", "assertTask3": "SCRIPT_task3",
    "assertTask4": "SCRIPT_task4", "assertTask5": "SCRIPT_task5",
    "assertMarkerExists": "MARKER_exists", "assertIncrement": "INCREMENT_correct",
    "assertRuntimeException": "ERROR_runtime", "assertErrorThrownErrorEvent": "ERROR_thrownErrorEvent",
    "assertGenericError": "ERROR", "assertExecutionParallel": "EXECUTION_parallel",
    "assertDataCorrect": "DATA_correct", "assertDeploymentFailed": "ERROR_deployment",
}  # fmt: skip

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCRIPT_JOB = "betsy-script"


@dataclass(frozen=True)
class BetsyCase:
    folder: str
    name: str
    number: int
    expected: tuple[str, ...]
    test_input: str | None = None
    integer_variable: int = 0
    parallel: bool = False
    delay_ms: int = 0

    @property
    def id(self) -> str:
        return f"{self.name}-{self.number}"


def betsy_root() -> Path | None:
    """The betsy copy named by ``NATSFLOW_BETSY_DIR``, or None when unset or incomplete."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    root = Path(raw)
    return root if (root / JAVA).is_dir() and (root / MODELS).is_dir() else None


# --- reading betsy's Java sources ------------------------------------------------------------


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return "\n".join(line for line in src.splitlines() if not line.strip().startswith("//"))


def _parenthesised(src: str, start: int) -> str:
    """The text inside the parentheses opening at ``src[start]`` (string literals respected)."""
    depth, i, in_string = 0, start, False
    while True:
        c = src[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return src[start + 1 : i]
        i += 1


def _feature_name(args: str) -> str:
    """The name given to ``new Feature(set, "Name"[, ...])``: its first top-level string."""
    at = args.rindex("new Feature", 0, args.index("new BPMNTestCaseBuilder()"))
    inner = _parenthesised(args, args.index("(", at))
    depth, i = 0, 0
    while i < len(inner):
        c = inner[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == '"':
            end = inner.index('"', i + 1)
            if depth == 0:
                return inner[i + 1 : end]
            i = end
        i += 1
    raise ValueError(f"no feature name in {args[:80]!r}")


def _case(folder: str, name: str, number: int, chain: str) -> BetsyCase:
    expected: list[str] = []
    test_input: str | None = None
    integer_variable, parallel, delay = 0, False, 0
    for method, arg in re.findall(r"\.(\w+)\(([^)]*)\)", chain):
        if method in INPUTS:
            test_input = INPUTS[method]
        elif method in ASSERTIONS:
            expected.append(ASSERTIONS[method])
        elif method == "setIntegerVariable":
            integer_variable = int(arg)
        elif method == "optionDelay":
            delay = int(arg)
        elif method == "useParallelProcess":
            parallel = True
        else:
            raise ValueError(f"unknown BPMNTestCaseBuilder call {method} in {name}")
    return BetsyCase(folder, name, number, tuple(expected), test_input, integer_variable, parallel, delay)


def load_cases(root: Path) -> list[BetsyCase]:
    """Every case of every test betsy lists (``List<Test>`` of each ``*Processes.java``)."""
    cases: list[BetsyCase] = []
    for java in sorted((root / JAVA).glob("*Processes.java")):
        src = _strip_comments(java.read_text(encoding="utf-8"))
        listed = set(
            re.findall(
                r"\w+", " ".join(re.findall(r"List<Test>\s+\w+\s*=\s*Arrays\.asList\(([^;]*)\);", src))
            )
        )
        builds = re.finditer(
            r"public static final Test (\w+)\s*=\s*BPMNProcessBuilder\.build(\w+)Process\s*", src
        )
        for m in builds:
            var, kind = m.groups()
            if var not in listed:
                continue
            args = _parenthesised(src, m.end())
            literal = re.match(r'\s*"([^"]*)"', args)
            # buildDataProcess and buildPatternProcess name the test after its feature
            name = literal.group(1) if literal and kind not in ("Data", "Pattern") else _feature_name(args)
            chains = args.split("new BPMNTestCaseBuilder()")[1:]
            cases += [_case(FOLDERS[kind], name, i, chain) for i, chain in enumerate(chains, start=1)]
    return cases


# --- translating a model -----------------------------------------------------------------------


def to_feel(expression: str) -> str:
    """betsy's Java/JUEL conditions as FEEL: ``${x}`` is ``x``, ``a.contains("s")`` is
    ``contains(a, "s")``, ``!e`` is ``not(e)``, ``&&``/``||`` are ``and``/``or``. A stray ``>``
    after a condition (a typo in Conditional_StartEvent_EventSubProcess_NonInterrupting, which
    betsy's engines' expression languages tolerate) is dropped."""
    text = expression.strip()
    if text.endswith(")>"):
        text = text[:-1]
    text = re.sub(r"^\$\{(.*)\}$", r"\1", text, flags=re.S).strip()
    text = re.sub(r'(\w+)\.contains\(("[^"]*")\)', r"contains(\1, \2)", text)
    text = text.replace("&&", " and ").replace("||", " or ")
    if text.startswith("!"):
        text = f"not({text[1:].strip()})"
    return text


_EXPRESSIONS = ("conditionExpression", "condition", "loopCondition", "activationCondition",
                "completionCondition", "loopCardinality")  # fmt: skip


def _q(local: str, ns: str = BPMN) -> str:
    return f"{{{ns}}}{local}"


def _script_to_job(el: ET.Element, token: str) -> None:
    for child in list(el):
        if child.tag == _q("script"):
            el.remove(child)
    el.attrib.pop("scriptFormat", None)
    ext = el.find(_q("extensionElements"))
    if ext is None:
        ext = ET.Element(_q("extensionElements"))
        el.insert(0, ext)
    ET.SubElement(ext, _q("taskDefinition", ZEEBE), {"type": SCRIPT_JOB, "retries": "1"})
    headers = ET.SubElement(ext, _q("taskHeaders", ZEEBE))
    ET.SubElement(headers, _q("header", ZEEBE), {"key": "script", "value": token})


def _wait_to_timer(el: ET.Element) -> None:
    kept = [c for c in el if c.tag in (_q("incoming"), _q("outgoing"))]
    attrs = {k: v for k, v in el.attrib.items() if k in ("id", "name")}
    el.clear()
    el.tag = _q("intermediateCatchEvent")
    el.attrib.update(attrs)
    el.extend(kept)
    timer = ET.SubElement(el, _q("timerEventDefinition"))
    ET.SubElement(timer, _q("timeDuration")).text = "PT10S"


def translate_model(source: bytes) -> bytes:
    """A betsy model as natsflow runs it (see the module docstring)."""
    ET.register_namespace("bpmn2", BPMN)
    ET.register_namespace("zeebe", ZEEBE)
    ET.register_namespace("xsi", XSI)
    root = ET.fromstring(source)
    for el in root.iter():
        if el.tag in (_q("scriptTask"), _q("globalScriptTask")):
            script = el.find(_q("script"))
            token = (script.text or "").strip() if script is not None else ""
            if token == "WAIT_TEN_SECONDS":
                _wait_to_timer(el)
            else:
                _script_to_job(el, token)
        elif el.tag in tuple(_q(name) for name in _EXPRESSIONS) and el.text and el.text.strip():
            el.text = to_feel(el.text)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


# --- running a case -----------------------------------------------------------------------------


@dataclass
class _Log:
    lines: list[str] = field(default_factory=list)
    marker: bool = False
    data: list[Any] = field(default_factory=list)
    started: dict[str, asyncio.Event] = field(
        default_factory=lambda: {"1": asyncio.Event(), "2": asyncio.Event()}
    )
    overlapped: int = 0

    async def play(self, token: str, variables: Mapping[str, Any]) -> dict[str, Any] | None:
        match token:
            case "CREATE_LOG_FILE":
                return None
            case "CREATE_MARKER_FILE":
                self.marker = True
            case "SET_STRING_DATA":
                return {"data": "String"}
            case "LOG_DATA":
                self.data.append(variables.get("data"))
            case "THROW_ERROR":
                raise BpmnError("ERR_CODE", "thrown by a betsy script")
            case "INCREMENT_INTEGER_VARIABLE":
                return {"integerVariable": int(variables.get("integerVariable", 0)) + 1}
            case "INCREMENT_INTEGER_VARIABLE_AND_LOG":
                self.lines.append("INCREMENT_correct")
                return {"integerVariable": int(variables.get("integerVariable", 0)) + 1}
            case "CREATE_TIMESTAMP_LOG_1" | "CREATE_TIMESTAMP_LOG_2":
                me, other = ("1", "2") if token.endswith("1") else ("2", "1")
                self.started[me].set()
                try:
                    await asyncio.wait_for(self.started[other].wait(), timeout=5.0)
                    self.overlapped += 1
                except TimeoutError:
                    pass
            case _:
                self.lines.append(token)
        return None


async def run_case(kit: ProcessTestEngine, case: BetsyCase, model: bytes) -> list[str]:
    """Deploy, start and drive one case; the log it leaves, as betsy would gather it."""
    log = _Log()

    @kit.task(SCRIPT_JOB)
    async def script(job: Any) -> Mapping[str, Any] | None:
        return await log.play(job.headers.get("script", ""), job.variables)

    lines = log.lines
    try:
        await kit.deploy(translate_model(model))
    except BpmnValidationError:
        lines.append("ERROR_deployment")
    else:
        started: list[str] = []
        try:
            if case.parallel:
                started.append(await kit.start_instance("ParallelProcess"))
            variables: dict[str, Any] = {
                "integerVariable": case.integer_variable,
                "testCaseNumber": case.number,
            }
            if case.test_input is not None:
                variables["test"] = case.test_input
            started.append(await kit.start_instance(case.name, variables))
        except NatsflowError:
            lines.append("ERROR_runtime")
        await kit.wait_until_idle()
        if case.delay_ms:
            await kit.advance_time(timedelta(milliseconds=case.delay_ms))
        for iid in await kit.instances():
            for incident in (await kit.instance(iid)).incidents:
                lines.append(
                    "ERROR_thrownErrorEvent" if incident.kind == "unhandled-error" else "ERROR_runtime"
                )
    # like betsy, the parallelism and the marker are looked at only where the case asks
    if "EXECUTION_parallel" in case.expected and log.overlapped == 2:
        lines.append("EXECUTION_parallel")
    if "MARKER_exists" in case.expected and log.marker:
        lines.append("MARKER_exists")
    if "DATA_correct" in case.expected and log.data and all(d == "String" for d in log.data):
        lines.append("DATA_correct")
    if "ERROR" in case.expected:
        lines[:] = ["ERROR" if line in ("ERROR_deployment", "ERROR_runtime") else line for line in lines]
    return sorted(lines)
