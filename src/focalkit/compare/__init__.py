"""Experiments behind the command line: data, tasks, the comparison protocol, statistics, reports, plots.

:func:`run` compares losses on a user's own ``fit`` (see :mod:`focalkit.compare.api`). Never
imported by the losses; needs the ``[cli]`` extra.
"""

from .api import run
from .results import Summary

__all__ = ["Summary", "run"]
