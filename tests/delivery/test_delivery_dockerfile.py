"""Static checks of the Dockerfile (no Docker engine here; e2e/ builds it for real where one exists).

The parser below follows Docker's rules for what these checks need: line continuations, comments,
parser directives, ARG substitution in FROM, stages, exec-form JSON, COPY sources resolved against
the build context after .dockerignore (last matching rule wins, `!` re-includes, a pattern also
matches every file below a matching directory).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BUILD_TOOLS = ("gcc", "g++", "cc ", "clang", "build-essential", "make ", "python3-dev", "libc6-dev")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue  # blank, comment or parser directive
        if buf and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped by Docker
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        logical.append((start, buf + stripped))
        buf = ""
    assert not buf, "the Dockerfile ends inside a line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"line {number}: only ARG may come before the first FROM"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return global_args, stages


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


def dockerignore_rules() -> list[tuple[bool, str]]:
    """(exclude?, pattern) in file order; Docker cleans patterns (no leading '/', no trailing '/')."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        rules.append((not negate, pattern.strip("/")))
    return rules


def _match(pattern: str, path: str) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex += pattern[i : end + 1]
            i = end + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def excluded(path: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's PatternMatcher.MatchesOrParentMatches: the last rule matching the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for exclude, pattern in rules:
        if any(_match(pattern, c) for c in candidates):
            result = exclude
    return result


def context_files() -> list[str]:
    rules = dockerignore_rules()
    files = []
    for p in ROOT.rglob("*"):
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith((".git/", ".venv/", ".tools/")) or not p.is_file():
            continue
        if not excluded(rel, rules):
            files.append(rel)
    return files


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_parser_handles_continuations_args_and_stages() -> None:
    args, parsed = parse(
        "# syntax=docker/dockerfile:1\nARG V=3.11\nFROM python:${V}-slim AS b\nRUN a \\\n  # note\n  && b\n"
        "FROM python:$V-slim\nUSER 1\n"
    )
    assert args == {"V": "3.11"}
    assert [(s.base, s.name) for s in parsed] == [("python:3.11-slim", "b"), ("python:3.11-slim", None)]
    assert parsed[0].instructions == [Instruction("RUN", "a  && b", 4)]
    rules = [(True, "*"), (False, "src"), (True, "**/__pycache__")]
    assert excluded("tests/x.py", rules) and not excluded("src/natsflow/cli.py", rules)
    assert excluded("src/natsflow/__pycache__/cli.pyc", rules)


def test_multi_stage_builder_makes_wheels_with_the_extras(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder = stages[0]
    assert builder.name, "the builder stage needs a name for COPY/--mount from=…"
    runs = " ".join(i.args for i in builder.all("RUN"))
    assert re.search(r"pip wheel\b.*(--wheel-dir|-w)[ =]/wheels", runs), runs
    assert '".[operator,fast]"' in runs or "'.[operator,fast]'" in runs


def test_final_stage_is_python_slim_with_wheels_only(stages: list[Stage], final: Stage) -> None:
    assert final.base == "python:3.11-slim"
    text = "\n".join(f"{i.keyword} {i.args}" for i in final.instructions)
    for tool in BUILD_TOOLS:
        assert tool not in text, f"build tool {tool.strip()!r} in the final stage"
    assert "apt-get install" not in text and "apk add" not in text
    installs = [i.args for i in final.all("RUN") if "pip install" in i.args]
    assert installs, "the final stage must install the wheels"
    for cmd in installs:
        assert "--no-index" in cmd and "--find-links=/wheels" in cmd, cmd
        assert f"from={stages[0].name}" in cmd and "source=/wheels" in cmd, cmd
    # Sources are never copied into the final image, only built wheels (through the mount).
    for copy in final.all("COPY"):
        assert "--from=" in copy.args, f"line {copy.line}: the final stage copies from the context"


def test_runs_as_non_root_uid_10001(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER in the final stage: the image would run as root"
    user = users[-1].args.split(":")[0]
    assert user == "10001", "numeric uid, so Kubernetes' runAsNonRoot can verify it"
    assert any("--uid ${NATSFLOW_UID}" in i.args or "--uid 10001" in i.args for i in final.all("RUN"))
    assert "NATSFLOW_UID=10001" in " ".join(i.args for i in final.all("ARG"))


def test_entrypoint_cmd_and_healthcheck(final: Stage) -> None:
    (entrypoint,) = final.all("ENTRYPOINT")
    assert exec_form(entrypoint) == ["natsflow"]
    (cmd,) = final.all("CMD")
    assert exec_form(cmd) == ["--help"]
    (health,) = final.all("HEALTHCHECK")
    probe = health.args[health.args.index("CMD") + 3 :].strip()
    argv = json.loads(probe)
    assert argv[0] == "python" and "/healthz" in argv[-1] and "NATSFLOW_HEALTH_PORT" in argv[-1]
    assert "curl" not in health.args and "wget" not in health.args
    compile(argv[-1], "<healthcheck>", "exec")  # the one-liner is valid Python
    assert "8080" in " ".join(i.args for i in final.all("EXPOSE"))


def test_every_copy_source_exists_in_the_build_context(stages: list[Stage]) -> None:
    files = context_files()
    copies = [i for s in stages for i in s.all("COPY") + s.all("ADD") if "--from=" not in i.args]
    assert copies
    for copy in copies:
        words = [w for w in shlex.split(copy.args) if not w.startswith("--")]
        sources = words[:-1]
        matched_any = False
        for src in sources:
            src = src.strip("/").removeprefix("./") or "."
            hits = [f for f in files if f == src or f.startswith(src + "/") or fnmatch.fnmatchcase(f, src)]
            if not re.search(r"[*?\[]", src):
                assert hits, f"line {copy.line}: COPY source {src!r} is missing or excluded by .dockerignore"
            matched_any = matched_any or bool(hits)
        assert matched_any, f"line {copy.line}: no source of this COPY exists in the build context"


def test_copies_every_package_root_of_pyproject(stages: list[Stage]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dirs = set(pyproject["tool"]["setuptools"]["packages"]["find"]["where"])
    copied = set()
    for copy in stages[0].all("COPY"):
        words = [w for w in shlex.split(copy.args) if not w.startswith("--")]
        copied.update(w.strip("/") for w in words[:-1])
    assert "pyproject.toml" in copied
    assert package_dirs <= copied, f"package roots not copied: {package_dirs - copied}"
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str) and (ROOT / readme).exists():
        assert readme in context_files(), f"{readme} is excluded from the build context"


def test_dockerignore_keeps_secrets_and_caches_out() -> None:
    rules = dockerignore_rules()
    for path in [
        ".git/config",
        ".venv/bin/python",
        ".tools/bin/helm",
        "tests/conftest.py",
        "e2e/README.md",
        "src/natsflow/__pycache__/x.cpython-311.pyc",
        "src/natsflow.egg-info/PKG-INFO",
        ".env",
    ]:
        assert excluded(path, rules), path
    for path in [
        "pyproject.toml",
        "src/natsflow/__init__.py",
        "engine/natsflow_engine/observability.py",
        "operator/natsflow_operator/__init__.py",
    ]:
        assert not excluded(path, rules), path


def test_e2e_worker_image_builds_from_the_base_and_drops_root() -> None:
    args, stages = parse((ROOT / "e2e" / "worker.Dockerfile").read_text())
    (stage,) = stages
    assert args["BASE"] == "natsflow:e2e" and stage.base == "natsflow:e2e"
    users = [i.args for i in stage.all("USER")]
    assert users[-1] == "10001:10001", "the worker image must end as the non-root uid"
    assert not stage.all("ENTRYPOINT"), "workers keep the base ENTRYPOINT (natsflow)"
