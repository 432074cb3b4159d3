"""`Settings`: arguments over ``TASKER_*`` variables over defaults, each value checked."""

from __future__ import annotations

import pytest

from tasker_trio.config import Settings
from tasker_trio.errors import ConfigurationError

URL = "postgresql://tasker:secret@db.internal:5433/tasker"


def test_defaults_are_the_memory_backend() -> None:
    settings = Settings.load({}, {})
    assert settings == Settings()
    assert settings.engine_options()["database"] is None


def test_arguments_win_over_the_environment() -> None:
    env = {"TASKER_DATABASE_URL": URL, "TASKER_POOL_SIZE": "3", "TASKER_NAMESPACES": "b, a"}
    settings = Settings.load({"pool_size": 5, "database": None}, env)
    assert (settings.database_url, settings.pool_size) == (URL, 5)
    assert settings.namespaces == ("a", "b")


def test_durability_reaches_the_engine_options() -> None:
    assert Settings.load({}, {}).engine_options()["durability"] == "full"
    relaxed = Settings.load({}, {"TASKER_DURABILITY": "outcomes"})
    assert relaxed.engine_options()["durability"] == "outcomes"
    assert (
        Settings.load({"durability": "full"}, {"TASKER_DURABILITY": "outcomes"}).durability
        == "full"
    )


@pytest.mark.parametrize(
    ("arguments", "environ", "says"),
    [
        ({"database": "mysql://h/db"}, {}, "is not a PostgreSQL URL"),
        ({"database": "postgresql://h:port/db"}, {}, "malformed database URL"),
        ({"database": "postgresql://h:5432"}, {}, "names no database"),
        ({}, {"TASKER_DATABASE_URL": "postgresql://u:pw@/db"}, "names no host"),
        ({}, {"TASKER_POOL_SIZE": "many"}, "TASKER_POOL_SIZE: 'many' is not a valid value"),
        ({"pool_size": 0}, {}, "--pool-size must be at least 1"),
        ({"wakeups": "sometimes"}, {}, "is not one of hybrid, event, poll"),
        ({"poll_interval": 0.0}, {}, "--poll-interval must be a positive number"),
        (
            {},
            {"TASKER_DURABILITY": "none"},
            "TASKER_DURABILITY: 'none' is not one of full, outcomes",
        ),
    ],
)
def test_bad_values_name_their_source(
    arguments: dict[str, object], environ: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        Settings.load(arguments, environ)
    assert "pw" not in str(caught.value)  # passwords are never shown
