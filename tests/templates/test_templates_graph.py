"""DAG queries on a template: steps by name, parents, children, roots, topological order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasker_trio.templates import load_template
from tasker_trio.templates.graph import find_cycles, topological_order

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


def test_parents_children_roots() -> None:
    template = load_template(EXAMPLES / "complex_dag.yaml")
    assert template.parents_of("finalize") == ("validate", "transform", "analyze")
    assert template.children_of("left") == ("validate", "transform")
    assert template.children_of("finalize") == ()
    assert template.root_steps() == ("init",)
    assert list(template.steps_by_name) == [s.name for s in template.steps]
    with pytest.raises(KeyError):
        template.parents_of("nope")


def test_topological_order_is_kahn_with_template_order_tie_break() -> None:
    names = ["d", "c", "b", "a"]
    parents = {"a": ["d"], "b": ["c"], "c": [], "d": []}
    assert topological_order(names, parents) == ["d", "c", "b", "a"]
    assert topological_order(["x", "y", "z"], {"x": ["z"]}) == ["y", "z", "x"]


def test_tree_order() -> None:
    template = load_template(EXAMPLES / "tree.yaml")
    order = template.topological_order()
    assert order[0] == "root"
    assert order[-1] == "convergence"
    for step in template.steps:
        for parent in step.dependencies:
            assert order.index(parent) < order.index(step.name)


def test_topological_order_rejects_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle: a, b"):
        topological_order(["a", "b"], {"a": ["b"], "b": ["a"]})


def test_find_cycles_ignores_self_loops_and_unknown_names() -> None:
    assert find_cycles(["a", "b"], {"a": ["a", "ghost"], "b": ["a"]}) == []
    assert find_cycles(["a", "b", "c"], {"a": ["c"], "b": ["a"], "c": ["b"]}) == [
        ("a", "b", "c", "a")
    ]
