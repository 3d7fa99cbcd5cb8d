"""``ship-order`` jobs (TaskDefinition ship-order, ``module: tasks.shipping:app``)."""

from __future__ import annotations

from typing import Any

from natsflow.worker import Job, Worker

app = Worker()


@app.task("ship-order")
async def ship_order(job: Job) -> dict[str, Any]:
    return {"trackingId": f"TRK-{job.variables.get('orderId', job.instance_id)}"}
