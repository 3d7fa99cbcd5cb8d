"""The part of the e2e suite that needs no cluster: loading the examples and checking that
everything they reference exists (worker modules with a handler for their task type, Secrets,
the processes a Trigger launches, the task types a process uses, the images' Dockerfiles).

The kind suite (test_e2e_workflows.py) applies what :func:`load_example` returns; the normal
test run calls :func:`example_problems` (tests/delivery/test_delivery_examples.py), so the
examples cannot rot between kind runs.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(os.environ.get("NATSFLOW_E2E_EXAMPLES", ROOT / "examples" / "k8s"))
KINDS = ("Workflow", "TaskDefinition", "Trigger")
# Fast autoscaling for the test: poll every 2 s, back to zero 20 s after the backlog is gone.
AUTOSCALING = {
    "enabled": True,
    "minReplicas": 0,
    "maxReplicas": 3,
    "targetPendingPerReplica": 5,
    "activationThreshold": 0,
    "pollingInterval": "2s",
    "cooldownPeriod": "20s",
    "scaleDownStabilization": "10s",
}
DOCKERFILES = {"natsflow": ROOT / "Dockerfile", "natsflow-worker": ROOT / "e2e" / "worker.Dockerfile"}
"""The images the e2e suite and docs/quickstart-kind.md build, by repository name."""


@dataclass
class Example:
    namespace: str
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def names(self, kind: str) -> list[str]:
        return [o["metadata"]["name"] for o in self.objects.get(kind, [])]

    def with_workers(self) -> list[str]:
        """TaskDefinitions that run a worker Deployment (an image or a pod template)."""
        return [
            o["metadata"]["name"]
            for o in self.objects.get("TaskDefinition", [])
            if o["spec"].get("image") or o["spec"].get("podTemplate")
        ]


def read_manifests(directory: Path = EXAMPLES) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def load_example(
    namespace: str, worker_image: str, directory: Path = EXAMPLES
) -> tuple[Example, list[dict[str, Any]]]:
    """The manifests of ``directory``, moved into ``namespace`` and set up for the test: every
    TaskDefinition with workers runs ``worker_image`` with fast autoscaling; the others (workers
    run elsewhere) keep only their consumer."""
    example = Example(namespace)
    manifests = []
    for doc in read_manifests(directory):
        doc = copy.deepcopy(doc)
        doc["metadata"].pop("namespace", None)
        if doc.get("apiVersion") == "natsflow.io/v1alpha1":
            doc["spec"]["deletionPolicy"] = "Delete"
            spec = doc["spec"]
            if doc["kind"] == "TaskDefinition" and (spec.get("image") or spec.get("podTemplate")):
                assert spec.get("module") or spec.get("args"), (
                    f"TaskDefinition {doc['metadata']['name']} names no worker module"
                )
                spec["image"] = worker_image
                spec["imagePullPolicy"] = "Never"
                spec["autoscaling"] = {**spec.get("autoscaling", {}), **AUTOSCALING}
            example.objects.setdefault(doc["kind"], []).append(doc)
        manifests.append(doc)
    missing = [k for k in KINDS if not example.objects.get(k)]
    assert not missing, f"{directory} has no {', '.join(missing)}: the e2e suite applies the examples"
    return example, manifests


def worker_paths(examples_root: Path = ROOT / "examples") -> list[str]:
    """sys.path of the worker image (the same rule as e2e/worker.Dockerfile): for every Python
    file of examples/, its folder, or the folder above its top-level package; and examples/."""
    found = {str(examples_root)}
    for path in examples_root.rglob("*.py"):
        folder = path.parent
        while (folder / "__init__.py").exists():
            folder = folder.parent
        found.add(str(folder))
    return sorted(found)


def handler_check(module: str, task_type: str) -> str | None:
    """Import ``module[:app]`` as the worker image would and check it serves ``task_type``;
    None when it does, else what is wrong."""
    name, _, attr = module.partition(":")
    program = (
        "import importlib, sys\n"
        f"app = getattr(importlib.import_module({name!r}), {attr or 'app'!r})\n"
        f"sys.exit(0 if {task_type!r} in app.task_types else 3)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(worker_paths())}
    proc = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    if proc.returncode == 3:
        return f"{module} has no handler for task type {task_type!r}"
    if proc.returncode:
        return f"{module} cannot be imported from examples/: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def example_problems(directory: Path = EXAMPLES) -> list[str]:
    """Everything the examples reference that does not exist (an empty list: all good)."""
    from natsflow_engine.bpmn.parser import parse_bpmn

    docs = read_manifests(directory)
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    problems: list[str] = []
    secrets, configmaps = by_kind.get("Secret", {}), by_kind.get("ConfigMap", {})
    processes: dict[str, set[str]] = {}  # process id -> task types it uses
    for name, wf in by_kind.get("Workflow", {}).items():
        spec = wf["spec"]
        source = spec.get("bpmn")
        if source is None:
            ref = spec["bpmnFrom"]["configMapKeyRef"]
            source = configmaps.get(ref["name"], {}).get("data", {}).get(ref["key"])
            if source is None:
                problems.append(
                    f"Workflow {name}: ConfigMap {ref['name']} key {ref['key']} is not in the examples"
                )
                continue
        for pid, process in parse_bpmn(source.encode()).processes.items():
            tasks = [n.task for n in process.nodes.values() if getattr(n, "task", None)]
            processes[pid] = {str(getattr(t.type, "value", t.type)) for t in tasks}
    task_types = {td["spec"].get("taskType", n): n for n, td in by_kind.get("TaskDefinition", {}).items()}
    for name, td in by_kind.get("TaskDefinition", {}).items():
        spec = td["spec"]
        if spec.get("module"):
            found = handler_check(spec["module"], spec.get("taskType", name))
            if found:
                problems.append(f"TaskDefinition {name}: {found}")
        elif spec.get("image"):
            problems.append(f"TaskDefinition {name}: an image but no module")
        for env in spec.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secrets.get(ref["name"], {}).get("stringData", {}):
                problems.append(
                    f"TaskDefinition {name}: Secret {ref['name']} key {ref['key']} is not in the examples"
                )
        nats_ref = spec.get("natsRef")
        if nats_ref and "url" not in secrets.get(nats_ref["name"], {}).get("stringData", {}):
            problems.append(
                f"TaskDefinition {name}: natsRef Secret {nats_ref['name']} with a url is not in the examples"
            )
    for name, trigger in by_kind.get("Trigger", {}).items():
        pid = trigger["spec"]["workflowRef"].get("processId")
        if pid not in processes:
            problems.append(f"Trigger {name}: process {pid!r} is in no example Workflow")
            continue
        for task_type in sorted(processes[pid] - set(task_types)):
            problems.append(
                f"Trigger {name}: process {pid} uses task type {task_type!r}, which no TaskDefinition declares"
            )
    for image, dockerfile in DOCKERFILES.items():
        if not dockerfile.is_file():
            problems.append(f"image {image}: {dockerfile.relative_to(ROOT)} does not exist")
    return problems
