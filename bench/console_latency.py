"""State change -> console page latency: ``python bench/console_latency.py``.

Starts a nats-server, an engine, the API server and the console; deploys the approval model
(a user task, then a gateway) and starts ``--running`` instances that wait at their user task.
Then, ``--samples`` times: open one instance's page in headless chromium (Playwright), complete
its user task through the API, and time until the page shows the instance ``completed`` (the
KV watch -> Server-Sent Events -> page path). Meanwhile ``--load`` user tasks per second of the
other instances are completed, so the engine is busy. Prints the latencies; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "console"))

from console_kit import Stack, approval, operator_token  # noqa: E402
from natsflow_engine.server import EmbeddedNatsServer  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def start_all(stack: Stack, tenant: str, count: int) -> list[str]:
    api = stack.api(tenant)
    await api.deploy(approval("bench-approval"), name="approval.bpmn")
    ids: list[str] = []
    for start in range(0, count, 100):
        replies = await asyncio.gather(
            *(api.start("bench-approval", {"n": n}) for n in range(start, min(count, start + 100)))
        )
        ids += [r.instance for r in replies]

    async def all_waiting() -> bool:
        return len(await api.tasks(limit=1000)) >= min(count, 1000)

    await stack.until(all_waiting, "every instance waits at its user task", timeout=600)
    return ids


async def background(stack: Stack, tenant: str, ids: list[str], rate: float, stop: threading.Event) -> int:
    api = stack.api(tenant)
    done = 0
    for iid in ids:
        if stop.is_set() or rate <= 0:
            break
        await api.complete_task(f"{iid}.3", {"x": 1})  # the approval model's user task is ei 3
        done += 1
        await asyncio.sleep(1 / rate)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--running", type=int, default=1000, help="instances running (waiting) meanwhile")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--load", type=float, default=50.0, help="other user tasks completed per second")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tenant = "bench"
    with EmbeddedNatsServer() as server:
        stack = Stack(server.url, {"alice": tenant}).start()
        try:
            t = time.perf_counter()
            ids = stack.run(start_all(stack, tenant, args.running + args.samples), timeout=600)
            print(f"{len(ids)} instances running after {time.perf_counter() - t:.1f} s")
            probes, others = ids[: args.samples], ids[args.samples :]
            stop = threading.Event()
            load = asyncio.run_coroutine_threadsafe(
                background(stack, tenant, others, args.load, stop), stack.loop
            )
            latencies: list[float] = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                context = browser.new_context(bypass_csp=True)  # wait_for_function evaluates strings
                page = context.new_page()
                page.goto(f"{stack.url}/login#token={operator_token(tenant)}")
                page.wait_for_url(f"{stack.url}/")
                api = stack.api(tenant)
                for iid in probes:
                    page.goto(f"{stack.url}/#/instances/{iid}")
                    page.wait_for_selector(".nf-token[data-element='approve']")
                    page.evaluate(WATCH)  # records performance.now() when the state turns completed
                    started: Any = page.evaluate("performance.now()")
                    stack.run(api.complete_task(f"{iid}.3", {"x": 1}))
                    page.wait_for_function("window.__completedAt !== undefined", polling=10)
                    latencies.append(page.evaluate("window.__completedAt") - started)
                browser.close()
            stop.set()
            others_done = load.result(60)
            print(f"background: {others_done} other instances completed during the samples")
            latencies.sort()
            p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
            print(
                f"state change -> page, {len(latencies)} samples with {args.running} instances running: "
                f"median {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms"
            )
        finally:
            stack.stop()


WATCH = """() => {
  window.__completedAt = undefined;
  const badge = document.getElementById('instance-state');
  new MutationObserver((_, observer) => {
    if (badge.textContent === 'completed') { window.__completedAt = performance.now(); observer.disconnect(); }
  }).observe(badge, { childList: true, characterData: true, subtree: true });
}"""


if __name__ == "__main__":
    main()
