"""``fraud-review`` jobs (TaskDefinition fraud-review, which runs no Deployment: its workers run
wherever you like, for example ``natsflow worker tasks.fraud:app`` next to a review tool)."""

from __future__ import annotations

from typing import Any

from natsflow.worker import Job, Worker

app = Worker()

REVIEW_LIMIT = 5000


@app.task("fraud-review")
async def fraud_review(job: Job) -> dict[str, Any]:
    return {"approved": job.variables.get("amount", 0) <= REVIEW_LIMIT}
