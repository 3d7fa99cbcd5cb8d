"""Formatting of bench results: the table, the details and the one summary line."""

from __future__ import annotations

import math
import os
from typing import Any


def _ms(d: dict[str, Any] | None, key: str) -> str:
    if not d:
        return "-"
    value = d.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}"


def _pair(d: dict[str, Any] | None) -> str:
    return f"{_ms(d, 'p50')} / {_ms(d, 'p99')}"


def table(results: list[dict[str, Any]], spiff: list[dict[str, Any]], limits: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | PI/s | step p50 / p99 ms | start→complete p50 / p99 ms (burst) "
        "| at offered load: PI/s, p50 / p99 ms | round trips / PI | msgs sent / PI "
        "| CPU s / 1000 PI (natsflow; nats-server) | peak RSS MB |"
    )
    rows = [head, "|" + "---|" * 9]
    for r in results:
        paced = r.get("paced") or {}
        offered = f"{paced['offered']:.0f}: {_pair(paced.get('s2c_ms'))}" if paced else "-"
        cpu = r["cpu_per_1000"]
        server_cpu = sum(v for k, v in cpu.items() if k.startswith("nats"))
        own_cpu = sum(v for k, v in cpu.items() if not k.startswith("nats"))
        rss = ", ".join(f"{k} {v:.0f}" for k, v in r["rss_mb"].items())
        rows.append(
            f"| {r['name']} | {r['rate']:.0f} | {_pair(r['step_ms'])} | {_pair(r['s2c_ms'])} | {offered} "
            f"| {r['round_trips']:.2f} | {r['msgs_out']:.2f} | {own_cpu:.2f}; {server_cpu:.2f} | {rss} |"
        )
    for s in spiff:
        rows.append(
            f"| reference / SpiffWorkflow {s['variant']} | {s['rate']:.0f} | - | {s['p50_ms']:.2f} / {s['p99_ms']:.2f} "
            f"| - | 0 | 0 | {s['cpu_s'] / s['completed'] * 1000:.2f}; - | spiff {s['maxrss_kb'] / 1024:.0f} |"
        )
    for lim in limits:
        name = "reference / JetStream limit" + (" / R3 cluster" if lim.get("cluster") else "")
        rows.append(
            f"| {name} | {lim['rate']:.0f} | - | {_pair(lim['s2c_ms'])} | - | {lim['round_trips']:.2f} "
            f"| {lim['msgs_out']:.2f} | {lim['cpu_per_1000']:.2f}; {lim['server_cpu_per_1000']:.2f} "
            f"| limit {lim['rss_mb']:.0f} |"
        )
    return "\n".join(rows)


def details(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in r["by_kind"].items())
        lines.append(f"{r['name']}: messages sent per instance by kind: {kinds}")
        if "server_in" in r:
            lines.append(
                f"{r['name']}: nats-server /varz per instance: in_msgs {r['server_in']:.2f},"
                f" out_msgs {r['server_out']:.2f} (out includes the bench's history observer)"
            )
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_per_1000"].items())
        lines.append(f"{r['name']}: CPU s per 1000 instances by process: {cpu}")
        lines.append(
            f"{r['name']}: other processes on the machine used {r.get('foreign_cores', 0):.2f} of"
            f" {os.cpu_count()} cores during the burst"
        )
        if r.get("paced"):
            p = r["paced"]
            lines.append(
                f"{r['name']}: paced {p['completed']} instances offered at {p['offered']:.0f}/s:"
                f" start→complete p50 {_ms(p['s2c_ms'], 'p50')} ms, p99 {_ms(p['s2c_ms'], 'p99')} ms;"
                f" step p50 {_ms(p.get('step_ms'), 'p50')} ms, p99 {_ms(p.get('step_ms'), 'p99')} ms"
            )
    return "\n".join(lines)


def summary(reference: dict[str, Any], spiff: dict[str, Any] | None, limit: dict[str, Any] | None) -> str:
    """``reference: <PI/s> PI/s, p99 <ms> ms, vs SpiffWorkflow <ratio>, vs JetStream limit <ratio>``.

    PI/s is the one-process burst rate; p99 is start-to-complete at half that rate offered;
    SpiffWorkflow is its serialized (durable-peer) variant."""
    rate = reference["rate"]
    paced = reference.get("paced") or {}
    p99 = (paced.get("s2c_ms") or reference["s2c_ms"])["p99"]
    vs_spiff = rate / spiff["rate"] if spiff else float("nan")
    vs_limit = rate / limit["rate"] if limit else float("nan")
    return f"reference: {rate:.0f} PI/s, p99 {p99:.1f} ms, vs SpiffWorkflow {vs_spiff:.2f}, vs JetStream limit {vs_limit:.2f}"


def goals(results: list[dict[str, Any]], limits: list[dict[str, Any]]) -> str:
    """One line with this run's figures against the engine's published goals: one process at
    0.8 of the JetStream limit or more, order-fulfilment at 1,000 PI/s or more (each mode
    run), an R3 cluster at 0.8 of its own limit or more; empty when none was run."""

    def verdict(met: bool) -> str:
        return "met" if met else "not met"

    parts = []
    plain = next((lim for lim in limits if not lim.get("cluster")), None)
    clustered = next((lim for lim in limits if lim.get("cluster")), None)
    for r in results:
        if r["workload"] == "reference" and r["mode"] == "one-process" and plain and not r["cluster"]:
            ratio = r["rate"] / plain["rate"]
            parts.append(f"one process {ratio:.2f} of the JetStream limit (0.8: {verdict(ratio >= 0.8)})")
    orders = [r for r in results if r["workload"] == "order" and not r["cluster"]]
    if orders:
        rates = ", ".join(f"{r['rate']:.0f} PI/s {r['mode']}" for r in orders)
        parts.append(f"order-fulfilment {rates} (1,000: {verdict(max(r['rate'] for r in orders) >= 1000)})")
    for r in results:
        if r["workload"] == "reference" and r["cluster"] and clustered:
            ratio = r["rate"] / clustered["rate"]
            parts.append(f"R3 cluster {ratio:.2f} of its limit (0.8: {verdict(ratio >= 0.8)})")
    return "goals: " + "; ".join(parts) if parts else ""
