"""PostgreSQL test fixtures: each test gets a fresh, migrated database (see `_database`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tasker_trio.db import Database
from tests.postgres._database import fresh_database, skip_without_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip this directory's tests, with the reason, when the server is unreachable."""
    for item in items:
        if item.path.parent.name == "postgres" and "tests" in item.path.parts:
            item.add_marker(skip_without_server())


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    """A fresh database with every migration applied, dropped after the test."""
    async with fresh_database() as db:
        yield db


@pytest.fixture
async def empty_database() -> AsyncIterator[Database]:
    """A fresh database with no migration applied, dropped after the test."""
    async with fresh_database(migrated=False) as db:
        yield db
