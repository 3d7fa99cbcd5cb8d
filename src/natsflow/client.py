"""The Python client of the request-reply API (public). See :mod:`natsflow_engine.api.client`."""

from natsflow_engine.api.client import ApiClient, ApiError

__all__ = ["ApiClient", "ApiError"]
