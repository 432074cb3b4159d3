"""``python -m tasker_trio run TEMPLATE``: run one task, show progress, print results."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasker_trio.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "templates"
LINEAR = str(EXAMPLES / "linear.yaml")
ORDER = str(EXAMPLES / "order_fulfillment.yaml")
LINEAR_RESULTS = {
    "linear_step_1": {"value": 36},
    "linear_step_2": {"value": 1296},
    "linear_step_3": {"value": 1679616},
    "linear_step_4": {"value": 2821109907456},
}
PROGRESS = re.compile(r"^\[ *\d+\.\d{3}s\] (\S+) +(.*)$")


@pytest.fixture(autouse=True)
def _from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each command from the checkout, as a user would (``examples.handlers`` imports)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))  # run adds the cwd; undo it afterwards


def progress_lines(err: str) -> list[tuple[str, str]]:
    return [m.groups() for line in err.splitlines() if (m := PROGRESS.match(line))]  # type: ignore[misc]


def test_run_linear_prints_results_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", LINEAR, "--context", '{"even_number": 6}'])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == LINEAR_RESULTS
    lines = progress_lines(err)
    for name in LINEAR_RESULTS:
        changes = [text for step, text in lines if step == name]
        assert changes, f"no progress line for {name}:\n{err}"
        assert changes[0].startswith("pending → enqueued")
        assert changes[-1].endswith("complete (attempt 1)")
    # Steps are shown in the order they ran.
    first_seen = list(dict.fromkeys(step for step, _ in lines))
    assert first_seen == list(LINEAR_RESULTS)
    assert "submitted: examples/linear_workflow@1.0.0 (4 steps)" in err
    assert re.search(r"complete: 4 steps in \d+\.\d{3}s", err)


def test_run_reads_the_context_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = tmp_path / "context.json"
    context.write_text('{"even_number": 2}')
    assert main(["run", LINEAR, "--context", f"@{context}", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["linear_step_4"] == {"value": 2**16}
    assert progress_lines(err) == []  # --quiet


def test_run_flaky_shows_the_retries(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(EXAMPLES / "flaky.yaml"), "--context", '{"amount": 250}'])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == {
        "fetch_rate": {"rate": 1.25, "attempts": 3},
        "convert": {"converted": 312.5},
    }
    fetch = " ".join(text for step, text in progress_lines(err) if step == "fetch_rate")
    assert fetch.count("waiting_for_retry (attempt") == 2
    assert "RetryableError: rate service unavailable (attempt 1 of 5); retry in 0.0" in fetch
    assert fetch.endswith("complete (attempt 3)")


def test_run_blocked_order_reports_the_failure(capsys: pytest.CaptureFixture[str]) -> None:
    context = {
        "order_id": "ORD-9",
        "customer_email": "ada@example.com",
        "items": [{"sku": "NOPE-0", "quantity": 1, "price": 1.0}],
    }
    code = main(["run", ORDER, "--context", json.dumps(context)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "ended blocked_by_failures" in err
    assert (
        "failed:  validate_order (error after 1 attempt): PermanentError: "
        "line 1: unknown SKU 'NOPE-0'" in err
    )
    assert "blocked: reserve_inventory, charge_payment, ship_order, notify_customer" in err
    assert re.search(r"dead-letter entry \S+ \(permanent_failure\)", err)
    assert "Traceback" not in err


def test_run_with_environment_applies_its_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    context = {
        "order_id": "ORD-BIG",
        "customer_email": "ada@example.com",
        "items": [{"sku": "WIDGET-1", "quantity": 100, "price": 19.99}],
    }
    args = ["run", ORDER, "--context", json.dumps(context), "--quiet"]
    assert main(args) == 0  # 1999.00 is within the 2000.00 limit
    capsys.readouterr()
    context["items"].append({"sku": "GADGET-7", "quantity": 1, "price": 49.5})
    args = ["run", ORDER, "--context", json.dumps(context), "--quiet"]
    assert main(args) == 1
    assert "card declined: 2048.50 USD" in capsys.readouterr().err
    assert main([*args, "--environment", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["charge_payment"]["gateway"] == "sandbox"


def test_run_warns_about_an_environment_the_template_lacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(["run", LINEAR, "--context", '{"even_number": 6}', "-q", "--environment", "tset"]) == 0
    )
    err = capsys.readouterr().err
    assert "warning: " in err
    assert "has no environment 'tset' (it has: none); running without overrides" in err


HANDLER_MODULE = """
import tasker_trio

@tasker_trio.step_handler("{name}")
def greet(ctx):
    return {{"greeting": "hello " + ctx.get_input("who")}}
"""

TEMPLATE = """
name: greeting
namespace_name: cli_test
version: 0.1.0
steps:
  - name: greet
    handler: {{callable: {name}}}
"""


@pytest.mark.parametrize("how", ["module", "file"])
def test_run_imports_handler_modules_for_their_registrations(
    how: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"cli_test_greet_{how}"
    module = tmp_path / f"{name}_handlers.py"
    module.write_text(HANDLER_MODULE.format(name=name))
    template = tmp_path / "greeting.yaml"
    template.write_text(TEMPLATE.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    handlers = module.stem if how == "module" else str(module)
    argv = ["run", str(template), "--context", '{"who": "trio"}', "--handlers", handlers]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"greet": {"greeting": "hello trio"}}


def test_run_gives_up_promptly_after_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a handler still running, ``run`` exits soon after its timeout.

    Leaving ``open_engine`` gives running handlers only ``shutdown_grace`` (0.5 s) before
    cancelling them (it used to wait the WorkerActor's 5 s ``stop_grace``).
    """
    module = tmp_path / "cli_test_sleepy.py"
    module.write_text("import trio\n\nasync def nap(ctx):\n    await trio.sleep(60)\n")
    template = tmp_path / "sleepy.yaml"
    template.write_text(TEMPLATE.format(name="cli_test_sleepy:nap"))
    monkeypatch.syspath_prepend(str(tmp_path))
    started = time.perf_counter()
    assert main(["run", str(template), "--timeout", "0.05"]) == 1
    elapsed = time.perf_counter() - started
    assert re.search(r"error: task \S+ is still \w+ after 0.05s", capsys.readouterr().err)
    assert elapsed < 2.0, f"run took {elapsed:.1f}s to exit after its 0.05 s timeout"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--context", '{"even_number": 6'], "error: --context is not valid JSON: Expecting"),
        (["--context", "[6]"], "error: --context must be a JSON object ({...}), not list"),
        (["--context", "@/no/such/file.json"], "error: cannot read --context file"),
        (
            ["--context", '{"even_number": 7}'],
            "error: context for examples/linear_workflow@1.0.0 is invalid at $.even_number",
        ),
        (["--context", "{}"], "is invalid at $"),
        (
            ["--context", '{"even_number": 6}', "--handlers", "no_such_module_xyz"],
            "error: cannot import handler module 'no_such_module_xyz': ModuleNotFoundError",
        ),
        (["--timeout", "0"], "error: --timeout must be a positive number of seconds"),
    ],
)
def test_run_reports_bad_input_clearly(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", LINEAR, *argv]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_run_reports_template_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml: file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnamespace_name: ok\nversion: 1.0.0\nsteps:\n  - name: a\n")
    assert main(["run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "bad.yaml" in err
    assert "Traceback" not in err


def test_run_reports_an_unresolvable_handler_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(Path(LINEAR).read_text().replace("linear:square", "linear:sqaure", 1))
    assert main(["run", str(typo), "--context", '{"even_number": 6}']) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        "error: step 'linear_step_1': cannot resolve handler 'examples.handlers.linear:sqaure'"
        in err
    )
    assert "submitted" not in err  # nothing was run


def test_help_lists_the_run_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for option in ["--context", "--handlers", "--timeout", "--environment", "--quiet"]:
        assert option in out


def test_readme_first_command_runs_a_real_workflow() -> None:
    """The README's first command runs the linear example; run that part as a subprocess."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```sh\n(.*?)\n```", readme, flags=re.DOTALL)
    assert first is not None
    command = first.group(1)
    run_part = next(p.strip() for p in command.split("&&") if " run " in p)
    argv = shlex.split(run_part)
    assert argv[:3] == [".venv/bin/python", "-m", "tasker_trio"]
    assert argv[3:] == ["run", "examples/templates/linear.yaml", "--context", '{"even_number": 6}']
    done = subprocess.run(
        [sys.executable, *argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == LINEAR_RESULTS
    assert "linear_step_4" in done.stderr  # progress goes to standard error
