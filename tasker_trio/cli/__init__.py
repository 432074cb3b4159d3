"""The command-line interface: one module per command group, `main` dispatches."""

from tasker_trio.cli.main import main as main
