"""The natsflow console: a web app to watch and operate workflows of one tenant, live.

:class:`Console` serves the built front-end (``static/``) and a JSON + Server-Sent Events API
under ``/api`` that bridges to natsflow's request-reply API and to NATS watches. Every route
acts for the authenticated user's tenant (:mod:`.auth`).
"""

from __future__ import annotations

from natsflow_console.app import Console, ConsoleSettings
from natsflow_console.auth import AuthError, User, Users, load_users

__all__ = ["AuthError", "Console", "ConsoleSettings", "User", "Users", "load_users"]
