# tasker_trio recipes. `just` itself comes with the dev extra (PyPI's rust-just).

venv := ".venv"
py := venv / "bin/python"

# Install the package with its test and dev tools into .venv.
install:
    python3 -m venv {{venv}}
    {{py}} -m pip install --quiet -e '.[dev]'

# Run the example linear workflow on the embedded engine (the README's run command).
run: install
    {{py}} -m tasker_trio run examples/templates/linear.yaml --context '{"even_number": 6}'

# Validate every example template and draw one as a Mermaid graph.
templates: install
    {{py}} -m tasker_trio templates validate examples/templates
    {{py}} -m tasker_trio templates graph examples/templates/order_fulfillment.yaml

# The whole test suite (the README's test command), CI profile for Hypothesis.
test: install
    HYPOTHESIS_PROFILE=ci {{py}} -m pytest

# Property tests only, with the thorough Hypothesis profile (2,000 examples per test).
property: install
    HYPOTHESIS_PROFILE=thorough {{py}} -m pytest property_tests

# Lint and type-check.
lint: install
    {{venv}}/bin/ruff check .
    {{venv}}/bin/ruff format --check tasker_trio
    {{venv}}/bin/mypy

# Benchmarks (each prints JSON; `bench/_*.py` are their modules).
bench: install
    for b in bench/[!_]*.py; do {{py}} "$b"; done

# What CI runs, on this checkout.
ci:
    CI=true bash .ci/run
