"""The template registry (keys, duplicates, latest by semver) and semver precedence."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tasker_trio.errors import DuplicateTemplate, UnknownTemplate
from tasker_trio.templates import SemVer, TaskTemplate, TemplateRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


def make(version: str, name: str = "flow", namespace: str = "ns", **extra: object) -> TaskTemplate:
    return TaskTemplate.from_json(
        {"name": name, "namespace_name": namespace, "version": version, **extra}
    )


def test_latest_is_by_semver_not_by_string() -> None:
    registry = TemplateRegistry.from_templates(make(v) for v in ["1.9.0", "1.10.0", "1.2.0"])
    assert registry.get_latest("ns", "flow").version == "1.10.0"
    assert registry.get("ns", "flow").version == "1.10.0"
    assert [t.version for t in registry.versions_of("ns", "flow")] == ["1.2.0", "1.9.0", "1.10.0"]


def test_prerelease_is_older_than_its_release() -> None:
    registry = TemplateRegistry.from_templates([make("2.0.0"), make("2.0.0-rc.2"), make("1.0.0")])
    assert registry.get_latest("ns", "flow").version == "2.0.0"


def test_prereleases_can_be_skipped() -> None:
    registry = TemplateRegistry.from_templates([make("1.0.0"), make("2.0.0-beta")])
    assert registry.get_latest("ns", "flow").version == "2.0.0-beta"
    assert registry.get_latest("ns", "flow", include_prereleases=False).version == "1.0.0"


def test_get_exact_version_and_unknown() -> None:
    registry = TemplateRegistry.from_templates([make("1.0.0"), make("1.1.0")])
    assert registry.get("ns", "flow", "1.0.0").version == "1.0.0"
    with pytest.raises(UnknownTemplate, match=r"ns/flow@3\.0\.0"):
        registry.get("ns", "flow", "3.0.0")
    with pytest.raises(UnknownTemplate, match=r"ns/other \(any version\)"):
        registry.get_latest("ns", "other")
    with pytest.raises(LookupError):
        registry.get("other", "flow")


def test_reregistering_an_equal_template_is_a_no_op() -> None:
    registry = TemplateRegistry()
    assert registry.register(make("1.0.0")) is True
    assert registry.register(attrs.evolve(make("1.0.0"), source_file="elsewhere.yaml")) is False
    assert len(registry) == 1


def test_reregistering_a_different_template_is_an_error() -> None:
    registry = TemplateRegistry()
    registry.register(attrs.evolve(make("1.0.0"), source_file="a.yaml"))
    with pytest.raises(
        DuplicateTemplate, match=r"ns/flow@1\.0\.0 is already registered \(from a\.yaml\)"
    ):
        registry.register(make("1.0.0", description="changed"))


def test_list_namespaces_and_membership() -> None:
    registry = TemplateRegistry.from_templates(
        [make("1.0.0", name="b"), make("1.0.0", name="a"), make("1.0.0", namespace="other")]
    )
    assert [t.identifier for t in registry.list()] == [
        "ns/a@1.0.0",
        "ns/b@1.0.0",
        "other/flow@1.0.0",
    ]
    assert [t.name for t in registry.list("ns")] == ["a", "b"]
    assert registry.namespaces() == ["ns", "other"]
    assert ("ns", "a", "1.0.0") in registry
    assert list(registry) == registry.list()


def test_from_paths_loads_the_examples() -> None:
    registry = TemplateRegistry.from_paths([EXAMPLES])
    assert registry.namespaces() == ["ecommerce", "examples"]
    assert registry.get_latest("ecommerce", "order_fulfillment").identifier == (
        "ecommerce/order_fulfillment@1.0.0"
    )


# --------------------------------------------------------------------------- semver

ORDERED = [
    "0.9.9",
    "1.0.0-0",
    "1.0.0-1",
    "1.0.0-10",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.9.0",
    "1.10.0",
    "2.0.0",
]


def test_semver_precedence_follows_the_spec() -> None:
    shuffled = list(reversed(ORDERED))
    assert [str(v) for v in sorted(SemVer.parse(v) for v in shuffled)] == ORDERED


def test_build_metadata_is_ignored_for_precedence() -> None:
    assert SemVer.parse("1.0.0+a") == SemVer.parse("1.0.0+b")
    assert SemVer.parse("1.0.0+a").build == ("a",)


def test_semver_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        SemVer.parse("1.0")
