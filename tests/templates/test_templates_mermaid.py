"""The Mermaid flowchart of a template's DAG."""

from __future__ import annotations

import re
from pathlib import Path

from tasker_trio.templates import TaskTemplate, load_template, to_mermaid

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


def test_diamond_graph_exactly() -> None:
    assert to_mermaid(load_template(EXAMPLES / "diamond.yaml")) == (
        "flowchart TD\n"
        "    %% examples/diamond_workflow@1.0.0\n"
        '    step_start["start"]\n'
        '    step_branch_b["branch_b"]\n'
        '    step_branch_c["branch_c"]\n'
        '    step_end["end"]\n'
        "    step_start --> step_branch_b\n"
        "    step_start --> step_branch_c\n"
        "    step_branch_b --> step_end\n"
        "    step_branch_c --> step_end\n"
    )


def test_one_node_per_step_and_one_edge_per_dependency() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        template = load_template(path)
        text = to_mermaid(template)
        nodes = re.findall(r"^    (step_\w+)[\[{]", text, flags=re.MULTILINE)
        edges = re.findall(r"^    (step_\w+) --> (step_\w+)$", text, flags=re.MULTILINE)
        assert len(nodes) == len(template.steps)
        assert len(edges) == sum(len(s.dependencies) for s in template.steps)


def test_non_standard_types_are_labelled_and_names_escaped() -> None:
    template = TaskTemplate.from_json(
        {
            "name": "t",
            "namespace_name": "ns",
            "version": "1.0.0",
            "steps": [
                {"name": "start-here", "handler": {"callable": "m:a"}},
                {
                    "name": "route",
                    "type": "decision",
                    "dependencies": ["start-here"],
                    "handler": {"callable": "m:b"},
                },
                {
                    "name": 'say "hi"',
                    "type": "deferred_convergence",
                    "dependencies": ["route"],
                    "handler": {"callable": "m:c"},
                },
                {"name": "start_here", "handler": {"callable": "m:d"}},
            ],
        }
    )
    lines = to_mermaid(template).splitlines()
    assert '    step_start_here["start-here"]' in lines
    assert '    step_route{"route (decision)"}' in lines
    assert '    step_say__hi_["say #quot;hi#quot; (deferred_convergence)"]' in lines
    assert '    step_start_here_3["start_here"]' in lines  # ids stay unique
    assert "    step_start_here --> step_route" in lines
