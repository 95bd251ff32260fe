"""``python -m focalkit`` is the ``focalkit`` command."""

from .cli import main

raise SystemExit(main())
