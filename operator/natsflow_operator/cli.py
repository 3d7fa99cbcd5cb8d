"""Click commands of the operator's two front doors; the main ``natsflow`` group adds them.

``natsflow operator``            run the Kubernetes operator (needs ``natsflow[operator]``)
``natsflow apply -f FILE|DIR``   reconcile manifests straight into NATS (no Kubernetes)
``natsflow delete -f FILE|DIR``  remove what those manifests declared from NATS

``apply`` and ``delete`` never import Kopf.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import click
from natsflow_engine import layout

from natsflow_operator.conditions import Outcome
from natsflow_operator.connections import NatsHandle, NatsPool, NatsTarget

__all__ = ["apply_cmd", "delete_cmd", "format_outcome", "operator_cmd", "run_manifests"]

_GROUPS = {"Workflow": "workflow", "TaskDefinition": "taskdefinition", "Trigger": "trigger"}
_DEFAULTS = {"nats_url": ("NATS_URL", "nats://127.0.0.1:4222"), "creds": ("NATS_CREDS", None)}
_DEFAULTS["tenant"] = ("NATSFLOW_TENANT", layout.DEFAULT_TENANT)


def _setting(name: str, given: str | None) -> str | None:
    """An option of this command, else the same option of the ``natsflow`` group (``natsflow
    --nats-url X apply ...``), else its environment variable, else the default."""
    if given is not None:
        return given
    root = click.get_current_context(silent=True)
    found = getattr(root.find_root().obj, name, None) if root is not None else None
    if found is not None:
        return str(found)
    env, default = _DEFAULTS[name]
    return os.environ.get(env, default)


def format_outcome(outcome: Outcome) -> str:
    """One line per object, in the style of ``kubectl apply``."""
    kind = _GROUPS.get(outcome.kind)
    ref = f"{kind}.natsflow.io/{outcome.name}" if kind else f"{outcome.kind.lower()}/{outcome.name}"
    line = f"{outcome.tenant}/{ref} {outcome.action}"
    if outcome.action in ("invalid", "failed"):
        return f"{line}: {outcome.message}"
    if "processes" in outcome.status:
        parts = [f"{p['processId']} v{p['version']}" for p in outcome.status["processes"]]
        parts += [f"form {f['formId']} v{f['version']}" for f in outcome.status.get("forms", [])]
        line += " (" + ", ".join(parts) + ")"
    elif "consumer" in outcome.status:
        line += f" (consumer {outcome.status['consumer']})"
    return line


async def run_manifests(
    action: str, files: Sequence[Path], *, url: str, creds: str | None, tenant: str, recursive: bool = False
) -> list[Outcome]:
    """Load the manifests and apply or delete them through one NATS connection."""
    from natsflow_operator.manifests import apply_manifests, delete_manifests, load_manifests

    manifests = load_manifests(files, recursive=recursive)
    runner: Callable[..., Awaitable[list[Outcome]]] = (
        apply_manifests if action == "apply" else delete_manifests
    )
    pool = NatsPool()
    try:
        handle: NatsHandle = await pool.get(NatsTarget(url, creds_file=creds))
        return await runner(handle, manifests, tenant=tenant)
    finally:
        await pool.close()


def _manifest_command(action: str, help_text: str) -> click.Command:
    @click.command(action, help=help_text)
    @click.option(
        "-f",
        "--filename",
        "files",
        multiple=True,
        required=True,
        type=click.Path(exists=True, path_type=Path),
        help="Manifest file or directory (repeatable).",
    )
    @click.option("-R", "--recursive", is_flag=True, help="Descend into subdirectories.")
    @click.option("--nats-url", default=None, help="NATS server(s) [default: the group's, NATS_URL].")
    @click.option("--creds", type=click.Path(exists=True), default=None, help="NATS credentials file.")
    @click.option("--tenant", default=None, help="Tenant of objects without a namespace [default: default].")
    @click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
    def command(
        files: tuple[Path, ...],
        recursive: bool,
        nats_url: str | None,
        creds: str | None,
        tenant: str | None,
        output: str,
    ) -> None:
        url, creds = _setting("nats_url", nats_url) or "", _setting("creds", creds)
        tenant = _setting("tenant", tenant) or layout.DEFAULT_TENANT
        try:
            layout.validate_tenant(tenant)
            outcomes = asyncio.run(
                run_manifests(action, files, url=url, creds=creds, tenant=tenant, recursive=recursive)
            )
        except Exception as exc:  # the boundary: any failure becomes one readable message
            raise click.ClickException(str(exc)) from exc
        if output == "json":
            click.echo(json.dumps({"items": [o.to_json() for o in outcomes]}, indent=2))
        else:
            for outcome in outcomes:
                click.echo(format_outcome(outcome))
        if any(o.action in ("invalid", "failed") for o in outcomes):
            raise SystemExit(1)

    return command


apply_cmd = _manifest_command(
    "apply", "Create or update Workflows, TaskDefinitions and Triggers from manifests, straight in NATS."
)
delete_cmd = _manifest_command(
    "delete", "Remove what the manifests declare from NATS (deletionPolicy honoured)."
)


@click.command("operator")
@click.option(
    "--nats-url", default=None, help="Default NATS for objects without natsRef [default: the group's]."
)
@click.option(
    "--nats-creds", default=None, help="Credentials file of that connection [default: the group's --creds]."
)
@click.option(
    "--worker-nats-url", envvar="NATSFLOW_WORKER_NATS_URL", default=None, help="URL given to workers."
)
@click.option(
    "--worker-creds-secret", default=None, help="Secret (key 'creds') mounted into default workers."
)
@click.option(
    "-n", "--namespace", "namespaces", multiple=True, help="Serve only these namespaces (repeatable)."
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Serve the whole cluster (the default).")
@click.option(
    "--drift-interval", type=float, default=60.0, show_default=True, help="Seconds between drift checks."
)
@click.option(
    "--health-port",
    type=int,
    default=8080,
    show_default=True,
    envvar="NATSFLOW_HEALTH_PORT",
    help="Port of /healthz, /readyz and /metrics (0: off).",
)
@click.option(
    "--tenancy-namespace",
    envvar="NATSFLOW_TENANCY_NAMESPACE",
    default=None,
    help="Serve Tenant resources (an account per tenant, NATS in operator mode); the platform "
    "namespace holding the operator's Secrets.",
)
@click.option(
    "--signing-key-secret",
    default="natsflow-operator-signing-key",
    show_default=True,
    help="Secret (key 'seed') with the operator signing key, in the platform namespace.",
)
@click.option(
    "--system-creds-secret",
    default="natsflow-system-credentials",
    show_default=True,
    help="Secret (key 'creds') with a system-account user, in the platform namespace.",
)
@click.option(
    "--user-ttl",
    type=float,
    default=86400.0,
    show_default=True,
    help="Seconds minted user credentials are valid (re-issued when a third is left).",
)
@click.option("-v", "--verbose", is_flag=True)
def operator_cmd(
    nats_url: str | None,
    nats_creds: str | None,
    worker_nats_url: str | None,
    worker_creds_secret: str | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    drift_interval: float,
    health_port: int,
    tenancy_namespace: str | None,
    signing_key_secret: str,
    system_creds_secret: str,
    user_ttl: float,
    verbose: bool,
) -> None:
    """Run the Kubernetes operator (Kopf) for Workflows, TaskDefinitions and Triggers."""
    try:
        from natsflow_operator.main import OperatorConfig, run_operator
        from natsflow_operator.tenancy import TenancyConfig
    except ImportError as exc:
        raise click.ClickException(
            f"the operator needs Kopf: pip install 'natsflow[operator]' ({exc})"
        ) from exc
    if namespaces and all_namespaces:
        raise click.UsageError("use either --namespace or --all-namespaces")
    if not logging.getLogger().handlers:  # run outside the natsflow group (which configures logging)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    kwargs: dict[str, Any] = {
        "nats_url": _setting("nats_url", nats_url),
        "nats_creds": _setting("creds", nats_creds),
        "worker_nats_url": worker_nats_url,
        "worker_creds_secret": worker_creds_secret,
        "namespaces": tuple(namespaces),
        "drift_interval": drift_interval,
        "health_port": health_port,
    }
    if tenancy_namespace:
        if user_ttl < 60:
            raise click.UsageError("--user-ttl must be at least 60 seconds")
        kwargs["tenancy"] = TenancyConfig(
            namespace=tenancy_namespace,
            signing_key_secret=signing_key_secret,
            system_creds_secret=system_creds_secret,
            user_ttl=user_ttl,
            renew_before=user_ttl / 3,
        )
    run_operator(OperatorConfig(**kwargs))
