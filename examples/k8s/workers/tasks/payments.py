"""``charge-card`` jobs (TaskDefinition charge-card, ``module: tasks.payments:app``).

A stand-in for a payment provider: it needs the API key the TaskDefinition mounts from the
Secret ``payment-api`` and charges nothing for real.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from natsflow.worker import BpmnError, Job, Worker

app = Worker()


@app.task("charge-card")
async def charge_card(job: Job) -> dict[str, Any]:
    key = os.environ.get("PAYMENT_API_KEY", "")
    if not key:
        raise RuntimeError("PAYMENT_API_KEY is not set (the Secret payment-api, key 'key')")
    amount = job.variables.get("amount")
    if not isinstance(amount, int | float) or amount <= 0:
        raise BpmnError("INVALID_AMOUNT", f"cannot charge {amount!r}")
    digest = hashlib.sha256(f"{key}:{job.instance_id}".encode()).hexdigest()[:10]
    return {"paymentId": f"pay-{digest}"}
