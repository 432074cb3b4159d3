"""Settings: what an engine process is configured with, from arguments and ``TASKER_*``.

Each setting comes from a command-line argument when one was given, else from its
environment variable, else its default:

| setting | environment | default |
|---|---|---|
| ``database_url`` | ``TASKER_DATABASE_URL`` | none (the embedded memory backend) |
| ``pool_size`` | ``TASKER_POOL_SIZE`` | 10 |
| ``wakeups`` | ``TASKER_WAKEUPS`` | ``hybrid`` (``event``, ``poll``) |
| ``poll_interval`` | ``TASKER_POLL_INTERVAL`` | 1.0 s |
| ``durability`` | ``TASKER_DURABILITY`` | ``full`` (``outcomes``) |
| ``worker_concurrency`` | ``TASKER_WORKER_CONCURRENCY`` | 8 |
| ``visibility_timeout`` | ``TASKER_VISIBILITY_TIMEOUT`` | 30.0 s |
| ``namespaces`` | ``TASKER_NAMESPACES`` (comma-separated) | every template's |

Every value is checked here, so a typo fails with a `ConfigurationError` naming the setting
and where it came from, before anything connects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from tasker_trio.backend import WAKEUP_MODES
from tasker_trio.db.opening import redact
from tasker_trio.errors import ConfigurationError
from tasker_trio.store.postgres import DURABILITY_MODES

T = TypeVar("T")

DATABASE_ENV = "TASKER_DATABASE_URL"
"""The environment variable that selects PostgreSQL when ``--database`` is not given."""


def check_database_url(url: str, *, source: str = "--database") -> str:
    """``url`` if it is a usable PostgreSQL URL.

    Raises:
        ConfigurationError: another scheme, no host or database name, or a bad port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigurationError(f"{source}: malformed database URL {redact(url)}: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"{source}: {redact(url)} is not a PostgreSQL URL; expected "
            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigurationError(f"{source}: the database URL {redact(url)} names no host")
    if not parts.path.strip("/"):
        raise ConfigurationError(f"{source}: the database URL {redact(url)} names no database")
    del port
    return url


@attrs.frozen(kw_only=True)
class Settings:
    """The settings of an engine process (see the module docstring for their sources)."""

    database_url: str | None = None
    pool_size: int = 10
    wakeups: str = "hybrid"
    poll_interval: float = 1.0
    durability: str = "full"
    worker_concurrency: int = 8
    visibility_timeout: float = 30.0
    namespaces: tuple[str, ...] = ()

    @classmethod
    def load(
        cls, arguments: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from ``arguments`` (None values are "not given"), else ``environ``.

        Raises:
            ConfigurationError: a value is malformed or out of range (names its source).
        """
        given = {k: v for k, v in (arguments or {}).items() if v is not None and v != []}
        env = os.environ if environ is None else environ
        pick = _Picker(given, env)
        url = pick("database", "--database", DATABASE_ENV, str, None)
        return cls(
            database_url=None if url is None else check_database_url(url, source=pick.last),
            pool_size=_at_least(
                1, pick("pool_size", "--pool-size", "TASKER_POOL_SIZE", int, 10), pick.last
            ),
            wakeups=_one_of(
                pick("wakeups", "--wakeups", "TASKER_WAKEUPS", str, "hybrid"),
                pick.last,
                WAKEUP_MODES,
            ),
            poll_interval=_positive(
                pick("poll_interval", "--poll-interval", "TASKER_POLL_INTERVAL", float, 1.0),
                pick.last,
            ),
            durability=_one_of(
                pick("durability", "--durability", "TASKER_DURABILITY", str, "full"),
                pick.last,
                DURABILITY_MODES,
            ),
            worker_concurrency=_at_least(
                1,
                pick("worker_concurrency", "--concurrency", "TASKER_WORKER_CONCURRENCY", int, 8),
                pick.last,
            ),
            visibility_timeout=_positive(
                pick(
                    "visibility_timeout",
                    "--visibility-timeout",
                    "TASKER_VISIBILITY_TIMEOUT",
                    float,
                    30.0,
                ),
                pick.last,
            ),
            namespaces=tuple(pick("namespaces", "--namespace", "TASKER_NAMESPACES", _names, ())),
        )

    def engine_options(self) -> dict[str, Any]:
        """These settings as `open_engine` keyword arguments."""
        options: dict[str, Any] = {
            "database": self.database_url,
            "pool_size": self.pool_size,
            "wakeups": self.wakeups,
            "poll_interval": self.poll_interval,
            "durability": self.durability,
            "worker_concurrency": self.worker_concurrency,
            "visibility_timeout": self.visibility_timeout,
        }
        if self.namespaces:
            options["namespaces"] = self.namespaces
        return options


class _Picker:
    """Reads one setting from the arguments or the environment, remembering which."""

    def __init__(self, given: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self._given = given
        self._env = env
        self.last = ""

    def __call__(
        self, key: str, flag: str, variable: str, parse: Callable[[Any], T], default: T
    ) -> T:
        if key in self._given:
            self.last, raw = flag, self._given[key]
        elif self._env.get(variable, "").strip():
            self.last, raw = variable, self._env[variable].strip()
        else:
            self.last = flag
            return default
        try:
            return parse(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{self.last}: {raw!r} is not a valid value") from None


def _names(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(sorted({str(item).strip() for item in items if str(item).strip()}))


def _at_least(low: int, value: int, source: str) -> int:
    if value < low:
        raise ConfigurationError(f"{source} must be at least {low}, got {value}")
    return value


def _positive(value: float, source: str) -> float:
    if not value > 0:
        raise ConfigurationError(f"{source} must be a positive number of seconds, got {value:g}")
    return value


def _one_of(value: str, source: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigurationError(f"{source}: {value!r} is not one of {', '.join(choices)}")
    return value
