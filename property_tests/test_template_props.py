"""Property tests of template validation over random DAGs (Hypothesis).

- A random DAG validates; its topological order is a permutation of the steps that puts
  every parent before its children; the JSON round trip gives back an equal template.
- Adding a back edge (making a step depend on one of its descendants) is always rejected,
  only with cycle errors, and every reported cycle is a real cycle of the graph: it starts
  and ends on the same step and each consecutive pair is an edge (parent -> child).
- Semver precedence agrees with a plain tuple model.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tasker_trio.errors import TemplateCycleError, TemplateValidationError
from tasker_trio.templates import SemVer, TaskTemplate, TemplateRegistry

MAX_STEPS = 12


@st.composite
def dags(draw: st.DrawFn, min_steps: int = 1) -> dict[str, list[str]]:
    """A random DAG as {step: parents}: each step may depend on any earlier ones.

    Step names are shuffled so template order is not always a topological order.
    """
    count = draw(st.integers(min_value=min_steps, max_value=MAX_STEPS))
    names = draw(st.permutations([f"s{i}" for i in range(count)]))
    graph: dict[str, list[str]] = {}
    for index, name in enumerate(names):
        graph[name] = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
    return graph


def as_template(graph: dict[str, list[str]], order: list[str]) -> dict[str, Any]:
    return {
        "name": "random",
        "namespace_name": "props",
        "version": "1.0.0",
        "steps": [
            {"name": name, "dependencies": graph[name], "handler": {"callable": f"m:{name}"}}
            for name in order
        ],
    }


def descendants(graph: dict[str, list[str]], start: str) -> set[str]:
    children: dict[str, list[str]] = {name: [] for name in graph}
    for child, parents in graph.items():
        for parent in parents:
            children[parent].append(child)
    seen: set[str] = set()
    stack = [start]
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


@given(data=st.data(), graph=dags())
def test_random_dags_validate_and_order_respects_every_edge(
    data: st.DataObject, graph: dict[str, list[str]]
) -> None:
    order = data.draw(st.permutations(list(graph)), label="template order")
    template = TaskTemplate.from_json(as_template(graph, order))
    topo = template.topological_order()
    assert sorted(topo) == sorted(graph)
    position = {name: index for index, name in enumerate(topo)}
    for child, parents in graph.items():
        for parent in parents:
            assert position[parent] < position[child]
            assert child in template.children_of(parent)
    assert TaskTemplate.from_json(template.to_json()) == template


@given(data=st.data(), graph=dags(min_steps=2))
def test_a_back_edge_is_rejected_with_a_real_cycle(
    data: st.DataObject, graph: dict[str, list[str]]
) -> None:
    pairs = [(a, d) for a in graph for d in sorted(descendants(graph, a))]
    if not pairs:  # no edge at all: make one so there is something to reverse
        first, second = sorted(graph)[:2]
        graph[second].append(first)
        pairs = [(first, second)]
    ancestor, descendant = data.draw(st.sampled_from(pairs), label="back edge")
    graph[ancestor] = [*graph[ancestor], descendant]  # ancestor now depends on its descendant
    order = data.draw(st.permutations(list(graph)), label="template order")
    try:
        TaskTemplate.from_json(as_template(graph, order))
    except TemplateValidationError as exc:
        errors = exc.errors
    else:
        raise AssertionError("a cyclic template was accepted")
    assert errors
    assert all(isinstance(error, TemplateCycleError) for error in errors)
    for error in errors:
        assert isinstance(error, TemplateCycleError)
        cycle = error.cycle
        assert len(cycle) >= 3
        assert cycle[0] == cycle[-1]
        assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle
        for parent, child in itertools.pairwise(cycle):
            assert parent in graph[child], f"{parent} -> {child} is not an edge"


semvers = st.builds(
    lambda major, minor, patch, pre: (major, minor, patch, pre),
    st.integers(0, 20),
    st.integers(0, 20),
    st.integers(0, 20),
    st.lists(
        st.one_of(st.integers(0, 30).map(str), st.sampled_from(["alpha", "beta", "rc"])), max_size=3
    ),
)


def render(version: tuple[int, int, int, list[str]]) -> str:
    major, minor, patch, pre = version
    return f"{major}.{minor}.{patch}" + (f"-{'.'.join(pre)}" if pre else "")


def model_key(version: tuple[int, int, int, list[str]]) -> tuple[Any, ...]:
    major, minor, patch, pre = version
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre)
    return (major, minor, patch, not pre, idents)


@given(st.lists(semvers, min_size=1, max_size=8, unique_by=render))
def test_registry_latest_matches_the_model(versions: list[tuple[int, int, int, list[str]]]) -> None:
    registry = TemplateRegistry.from_templates(
        TaskTemplate.from_json({"name": "f", "namespace_name": "p", "version": render(v)})
        for v in versions
    )
    expected = max(versions, key=model_key)
    assert registry.get_latest("p", "f").version == render(expected)
    ordered = [render(v) for v in sorted(versions, key=model_key)]
    assert [str(v) for v in sorted(SemVer.parse(render(v)) for v in versions)] == ordered
