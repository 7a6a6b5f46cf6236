"""``python -m mmbook``: the command line (see :mod:`mmbook.cli`)."""

from .cli import main

raise SystemExit(main())
