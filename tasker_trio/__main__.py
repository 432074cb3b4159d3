"""``python -m tasker_trio``: the command-line interface."""

from tasker_trio.cli import main

raise SystemExit(main())
