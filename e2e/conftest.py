"""The kind-based end-to-end suite: opt-in with ``--e2e``; skips with a reason where it cannot run.

Session fixtures, in order: tools (docker engine, kind, kubectl, helm) -> a kind cluster ->
the natsflow image and a worker image built and loaded into it -> CRDs applied from crds/ ->
the chart installed with a bundled NATS server. See e2e/README.md.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_kit import IMAGE, RELEASE, ROOT, SYSTEM_NS, WORKER_IMAGE, Kubectl, docker_engine_reachable, run

E2E_TIMEOUT = 1800  # seconds per test, cluster creation and image builds included


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("natsflow e2e")
    group.addoption("--e2e", action="store_true", default=False, help="run the kind-based end-to-end tests")
    group.addoption(
        "--e2e-cluster",
        default=os.environ.get("NATSFLOW_E2E_CLUSTER", ""),
        help="reuse this existing kind cluster instead of creating (and deleting) one",
    )
    group.addoption("--e2e-keep", action="store_true", default=False, help="keep the cluster after the run")
    group.addoption(
        "--e2e-skip-build",
        action="store_true",
        default=False,
        help="use the images natsflow:e2e and natsflow-worker:e2e already built",
    )


def _why_not_runnable(config: pytest.Config) -> str | None:
    if not config.getoption("--e2e"):
        return "e2e tests are opt-in: run `pytest e2e --e2e`"
    reachable, why = docker_engine_reachable()
    if not reachable:
        return f"docker engine not reachable: e2e needs kind ({why})"
    if shutil.which("kind") is None:
        return "kind not found on PATH: e2e needs kind (go install sigs.k8s.io/kind@latest)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.fspath)).parents]
    if not ours:
        return
    reason = _why_not_runnable(config)
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@dataclass(frozen=True)
class Tools:
    kubectl: str
    helm: str


@dataclass(frozen=True)
class Cluster:
    name: str
    kubeconfig: Path


@pytest.fixture(scope="session")
def tools() -> Tools:
    helm = run(["bash", "scripts/install-helm.sh"], timeout=600, env={**os.environ, "INSTALL_KUBECTL": "1"})
    helm_path = helm.stdout.strip().splitlines()[-1]
    kubectl = shutil.which("kubectl") or str(Path(helm_path).parent / "kubectl")
    return Tools(kubectl=kubectl, helm=helm_path)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A kind cluster (created here unless --e2e-cluster names one), with its own kubeconfig file."""
    existing = request.config.getoption("--e2e-cluster")
    name = existing or f"natsflow-e2e-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    if existing:
        run(["kind", "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)])
    else:
        run(
            ["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", "180s"],
            timeout=600,
        )
    try:
        yield Cluster(name, kubeconfig)
    finally:
        if not existing and not request.config.getoption("--e2e-keep"):
            run(["kind", "delete", "cluster", "--name", name], timeout=300, check=False)


@pytest.fixture(scope="session")
def kubectl(tools: Tools, cluster: Cluster) -> Kubectl:
    return Kubectl(tools.kubectl, cluster.kubeconfig)


@pytest.fixture(scope="session")
def images(request: pytest.FixtureRequest, cluster: Cluster) -> tuple[str, str]:
    """natsflow:e2e from the repo's Dockerfile and natsflow-worker:e2e FROM it, loaded into kind."""
    if not request.config.getoption("--e2e-skip-build"):
        run(["docker", "build", "-t", IMAGE, "."], timeout=1200)
        # The worker image's context is examples/ (the root .dockerignore keeps examples out).
        run(
            [
                "docker",
                "build",
                "-f",
                "e2e/worker.Dockerfile",
                "--build-arg",
                f"BASE={IMAGE}",
                "-t",
                WORKER_IMAGE,
                "examples",
            ],
            timeout=600,
        )
    run(["kind", "load", "docker-image", IMAGE, WORKER_IMAGE, "--name", cluster.name], timeout=600)
    return IMAGE, WORKER_IMAGE


@pytest.fixture(scope="session")
def platform(tools: Tools, kubectl: Kubectl, images: tuple[str, str]) -> Iterator[str]:
    """CRDs from crds/ (as GitOps would apply them), then the chart with a bundled NATS server."""
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for crd in ("workflows", "taskdefinitions", "triggers"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}.natsflow.io", "--timeout=60s")
    image, _ = images
    repository, tag = image.split(":")
    run(
        [
            tools.helm,
            "upgrade",
            "--install",
            RELEASE,
            str(ROOT / "charts" / "natsflow"),
            "--kubeconfig",
            str(kubectl.kubeconfig),
            "--namespace",
            SYSTEM_NS,
            "--create-namespace",
            "--skip-crds",
            "--wait",
            "--timeout",
            "10m",
            "--set",
            f"image.repository={repository}",
            "--set",
            f"image.tag={tag}",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            "nats.enabled=true",
            "--set",
            "engine.replicas=1",
            "--set",
            "triggerServer.replicas=1",
            "--set",
            "logging.level=debug",
        ],
        timeout=900,
    )
    yield RELEASE
    if os.environ.get("NATSFLOW_E2E_DUMP"):
        print(kubectl("-n", SYSTEM_NS, "logs", "deploy/natsflow-operator", "--tail=200", check=False))


@pytest.fixture(scope="module")
def tenant(kubectl: Kubectl, platform: str) -> Iterator[str]:
    """A fresh namespace (= tenant) per test module; deleted afterwards."""
    ns = f"tenant-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
