"""Semantic versions (semver 2.0.0): parsing and precedence, for "latest version" lookups.

Small enough to keep here instead of adding a dependency: a version is
``MAJOR.MINOR.PATCH`` with an optional ``-prerelease`` and ``+build``. Precedence follows the
specification: numbers compare numerically (``1.10.0 > 1.9.0``), a pre-release sorts before
its release (``1.0.0-rc.1 < 1.0.0``), pre-release identifiers compare one by one (numeric ones
numerically and below alphanumeric ones, a shorter list first when all else is equal), and
build metadata is ignored.
"""

from __future__ import annotations

import functools
import re

import attrs

SEMVER_PATTERN = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
"""The official semver 2.0.0 regular expression."""


@functools.total_ordering
@attrs.frozen(kw_only=True, eq=False)
class SemVer:
    """A parsed semantic version, ordered by semver precedence.

    Two versions that differ only in build metadata have equal precedence (and compare
    equal here); keep the original text in ``text`` when the exact string matters.

    Attributes:
        major: the major number.
        minor: the minor number.
        patch: the patch number.
        prerelease: the dot-separated pre-release identifiers (empty for a release).
        build: the dot-separated build identifiers (ignored for precedence).
        text: the version as written.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    text: str

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``text`` as a semantic version.

        Raises:
            ValueError: when ``text`` is not ``MAJOR.MINOR.PATCH[-prerelease][+build]``.
        """
        match = SEMVER_PATTERN.match(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0 or 2.1.0-rc.1)"
            )
        pre, build = match["prerelease"], match["build"]
        return cls(
            major=int(match["major"]),
            minor=int(match["minor"]),
            patch=int(match["patch"]),
            prerelease=tuple(pre.split(".")) if pre else (),
            build=tuple(build.split(".")) if build else (),
            text=text,
        )

    @property
    def is_prerelease(self) -> bool:
        """Whether this is a pre-release (``1.0.0-beta``), which sorts before its release."""
        return bool(self.prerelease)

    def precedence_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """A tuple that sorts versions by semver precedence (build metadata ignored)."""
        pre = tuple(
            (0, int(ident), "") if ident.isdigit() else (1, 0, ident) for ident in self.prerelease
        )
        # A release (no pre-release) outranks every pre-release of the same core version.
        return (self.major, self.minor, self.patch, 0 if pre else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.precedence_key() == other.precedence_key()

    def __lt__(self, other: SemVer) -> bool:
        return self.precedence_key() < other.precedence_key()

    def __hash__(self) -> int:
        return hash(self.precedence_key())

    def __str__(self) -> str:
        return self.text


def is_semver(text: str) -> bool:
    """Whether ``text`` is a valid semantic version."""
    return SEMVER_PATTERN.match(text) is not None
