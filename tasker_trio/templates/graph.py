"""Pure graph algorithms over a template's steps: cycle finding and topological order.

A graph is given as the step names in template order plus each step's parents (its
``dependencies``). Edges run parent -> child, the direction work flows and the direction the
Mermaid graph draws; a reported cycle ``a -> b -> c -> a`` therefore means ``b`` depends on
``a``, ``c`` on ``b`` and ``a`` on ``c``. Names that are not steps are ignored here (the
validation reports them as unknown dependencies).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def children_map(
    names: Sequence[str], parents: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each step's children, in template order, from each step's parents."""
    known = set(names)
    children: dict[str, list[str]] = {name: [] for name in names}
    for child in names:
        for parent in parents.get(child, ()):
            if parent in known and child not in children[parent]:
                children[parent].append(child)
    return children


def find_cycles(
    names: Sequence[str], parents: Mapping[str, Sequence[str]]
) -> list[tuple[str, ...]]:
    """Every cycle a depth-first search meets, each as a path whose first step is repeated last.

    The search starts from each step in template order and follows parent -> child edges;
    each back edge yields one cycle. Rotations of the same cycle are reported once.
    Self-dependencies are left out (validation reports them on their own).

    Returns:
        The cycles in discovery order, e.g. ``[("a", "b", "c", "a")]``; empty for a DAG.
    """
    children = children_map(names, parents)
    white, gray, black = 0, 1, 2
    color = dict.fromkeys(names, white)
    cycles: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    for root in names:
        if color[root] != white:
            continue
        path = [root]
        color[root] = gray
        iters = [iter(children[root])]
        while iters:
            child = next(iters[-1], None)
            if child is None:
                iters.pop()
                color[path.pop()] = black
            elif child == path[-1]:
                continue  # a self-dependency, reported separately
            elif color[child] == white:
                color[child] = gray
                path.append(child)
                iters.append(iter(children[child]))
            elif color[child] == gray:
                loop = path[path.index(child) :]
                pivot = loop.index(min(loop))
                canonical = tuple(loop[pivot:] + loop[:pivot])
                if canonical not in seen:
                    seen.add(canonical)
                    cycles.append((*loop, child))
    return cycles


def topological_order(names: Sequence[str], parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm, breaking ties by template order, so the result is deterministic.

    Raises:
        ValueError: when the steps form a cycle (some steps can never become ready).
    """
    position = {name: index for index, name in enumerate(names)}
    children = children_map(names, parents)
    indegree = dict.fromkeys(names, 0)
    for kids in children.values():
        for kid in kids:
            indegree[kid] += 1
    ready = [position[name] for name in names if indegree[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for kid in children[name]:
            indegree[kid] -= 1
            if indegree[kid] == 0:
                heapq.heappush(ready, position[kid])
    if len(order) != len(position):
        placed = set(order)
        stuck = [name for name in names if name not in placed]
        raise ValueError(f"steps in a dependency cycle: {', '.join(stuck)}")
    return order
