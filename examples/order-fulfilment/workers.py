"""Workers of the order-fulfilment example: ``natsflow worker workers:app``.

Each handler stands for a call to another system; here they decide from the order data so the
example is deterministic.
"""

from __future__ import annotations

import hashlib
from typing import Any

from natsflow.worker import BpmnError, Job, Worker

app = Worker()

STOCK_LIMIT = 5  # the warehouse holds five of each item
CARD_LIMIT = 500  # cards decline above this amount


@app.task("check-stock")
async def check_stock(job: Job) -> dict[str, Any]:
    items = job.variables["items"]
    return {"inStock": all(item["quantity"] <= STOCK_LIMIT for item in items)}


@app.task("charge-payment")
async def charge_payment(job: Job) -> dict[str, Any]:
    amount = job.variables["amount"]
    if amount > CARD_LIMIT:
        raise BpmnError("PAYMENT_DECLINED", f"card {job.variables['card']} declined {amount}")
    digest = hashlib.sha256(job.instance_id.encode()).hexdigest()[:8]
    return {"paymentId": f"pay-{digest}"}


@app.task("reserve-shipment")
async def reserve_shipment(job: Job) -> dict[str, Any]:
    return {"carrier": job.headers["carrier"], "trackingId": f"TRK-{job.variables['orderId']}"}


@app.task("ship-order")
async def ship_order(job: Job) -> dict[str, Any]:
    return {"shipped": True}


@app.task("notify-customer")
async def notify_customer(job: Job) -> dict[str, Any]:
    return {"notified": job.variables["customer"]["email"]}


@app.task("cancel-order")
async def cancel_order(job: Job) -> dict[str, Any]:
    return {"cancelled": True}
