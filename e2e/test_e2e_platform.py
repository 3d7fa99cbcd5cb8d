"""The chart on a real cluster: CRDs established, components available, hardened, answering probes."""

from __future__ import annotations

import json
import urllib.request

from e2e_kit import RELEASE, SYSTEM_NS, Kubectl, port_forward, wait_for

COMPONENTS = ("operator", "engine", "trigger-server")


def test_crds_are_established(kubectl: Kubectl, platform: str) -> None:
    for plural in ("workflows", "taskdefinitions", "triggers"):
        crd = kubectl.get("crd", f"{plural}.natsflow.io")
        assert crd["spec"]["scope"] == "Namespaced"
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True"


def test_components_are_available_and_hardened(kubectl: Kubectl, platform: str) -> None:
    for component in COMPONENTS:
        name = f"{RELEASE}-{component}"
        kubectl("-n", SYSTEM_NS, "rollout", "status", f"deploy/{name}", "--timeout=300s", timeout=320)
        pods = json.loads(
            kubectl(
                "-n", SYSTEM_NS, "get", "pods", "-l", f"app.kubernetes.io/component={component}", "-o", "json"
            )
        )["items"]
        assert pods, name
        for pod in pods:
            assert pod["status"]["phase"] == "Running"
            statuses = pod["status"]["containerStatuses"]
            assert all(s["ready"] for s in statuses), f"{pod['metadata']['name']} not ready"
            # The kubelet enforced runAsNonRoot against the image's numeric USER.
            uid = kubectl(
                "-n",
                SYSTEM_NS,
                "exec",
                pod["metadata"]["name"],
                "--",
                "python",
                "-c",
                "import os; print(os.getuid())",
            ).strip()
            assert uid == "10001"
            probe = kubectl.proc(
                "-n",
                SYSTEM_NS,
                "exec",
                pod["metadata"]["name"],
                "--",
                "python",
                "-c",
                "open('/probe', 'w')",
                check=False,
            )
            assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe.stderr


def test_health_and_metrics_endpoints(kubectl: Kubectl, platform: str) -> None:
    for component in ("engine", "operator"):
        with port_forward(kubectl, f"svc/{RELEASE}-{component}", SYSTEM_NS, 8080) as pf:
            for path, expected in (("/healthz", b"ok"), ("/readyz", b"ready"), ("/metrics", b"# HELP")):

                def fetch(path: str = path) -> bytes:
                    with urllib.request.urlopen(f"http://{pf.url}{path}", timeout=5) as resp:
                        assert resp.status == 200
                        return resp.read()  # type: ignore[no-any-return]

                body = wait_for(f"{component} {path}", fetch, timeout=60)
                assert expected in body, (component, path, body[:200])
