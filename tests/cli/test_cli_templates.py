"""``python -m tasker_trio templates ...`` and the top-level CLI behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tasker_trio import __version__
from tasker_trio.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "templates"


def test_module_entry_point_prints_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tasker_trio", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == f"tasker_trio {__version__}"


def test_help_lists_the_templates_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "templates" in capsys.readouterr().out


def test_group_without_subcommand_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates"]) == 2
    assert "validate" in capsys.readouterr().err


def test_validate_examples_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "validate", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    for name in ["linear", "diamond", "complex_dag", "tree", "order_fulfillment", "flaky"]:
        assert f"{name}.yaml" in out
    assert out.count("ok ") == 6


def test_validate_reports_every_problem_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nnamespace_name: Bad-NS\nversion: '1.0.0'\nsteps:\n"
        "  - name: a\n    handler: {callable: 'm:f'}\n    dependencies: [missing]\n"
    )
    code = main(["templates", "validate", str(bad), str(EXAMPLES / "linear.yaml")])
    captured = capsys.readouterr()
    assert code == 1
    assert "ok       " in captured.out  # the valid file is still reported
    assert f"{bad}: field 'namespace_name'" in captured.err
    assert f"{bad}: step 'a': field 'dependencies': unknown dependency 'missing'" in captured.err


def test_validate_reports_a_cycle_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text(
        "name: c\nnamespace_name: ns\nversion: '1.0.0'\nsteps:\n"
        "  - {name: a, handler: {callable: 'm:f'}, dependencies: [c]}\n"
        "  - {name: b, handler: {callable: 'm:f'}, dependencies: [a]}\n"
        "  - {name: c, handler: {callable: 'm:f'}, dependencies: [b]}\n"
    )
    assert main(["templates", "validate", str(cyclic)]) == 1
    assert "cycle" in capsys.readouterr().err


def test_graph_prints_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "graph", str(EXAMPLES / "diamond.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD")
    assert out.count("-->") == 4


def test_graph_of_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["templates", "graph", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "nope.yaml" in err
    assert "Traceback" not in err


def test_help_lists_the_tasks_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "tasks" in capsys.readouterr().out
    assert main(["tasks"]) == 2
    err = capsys.readouterr().err
    assert "submit" in err
    assert "show" in err


@pytest.mark.parametrize(
    "args",
    [
        ["templates", "register", str(EXAMPLES / "linear.yaml")],
        ["templates", "list"],
        ["tasks", "submit", "examples", "linear_workflow"],
        ["tasks", "show", "5ed6b514-0000-4000-8000-000000000000"],
    ],
)
def test_database_commands_need_a_database(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKER_DATABASE_URL", raising=False)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: this command needs a PostgreSQL database: give --database URL")
