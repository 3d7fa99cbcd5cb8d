"""One operator-mode nats-server for the tenancy suite; every test makes its own accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from natsflow_engine.accounts import OperatorTrust
from natsflow_engine.server import EmbeddedNatsServer, operator_config
from tenancy_kit import OperatorServer


@pytest.fixture(scope="session")
def operator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorServer]:
    trust = OperatorTrust.create()
    resolver = Path(tmp_path_factory.mktemp("resolver"))
    config = operator_config(
        trust.jwt,
        trust.system_account.public,
        {trust.system_account.public: trust.system_account_jwt},
        resolver_dir=resolver,
    )
    with EmbeddedNatsServer(config=config) as server:
        yield OperatorServer(trust, server)
