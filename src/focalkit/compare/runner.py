"""Run many (loss, seed) trainings, in parallel processes, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence

from joblib import Parallel, delayed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .data import Dataset
from .losses import LossSpec
from .train import Protocol, RunResult, run_one

__all__ = ["run_grid"]


def run_grid(data: Dataset, specs: Sequence[LossSpec], seeds: Sequence[int], protocol: Protocol, *, jobs: int = 1,
             console: Console | None = None, description: str = "training", targets: tuple[float, ...] = ()
             ) -> list[RunResult]:
    """Every loss × seed, each with its own learning-rate search; results in (loss, seed) order."""
    tasks = [(spec, seed) for spec in specs for seed in seeds]
    console = console or Console(stderr=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    results: dict[tuple[str, int], RunResult] = {}
    with Progress(*columns, console=console) as bar:
        task_id = bar.add_task(description, total=len(tasks))
        if jobs == 1:
            stream = (run_one(data, spec, seed, protocol, targets) for spec, seed in tasks)
        else:
            stream = Parallel(n_jobs=jobs, return_as="generator_unordered")(
                delayed(run_one)(data, spec, seed, protocol, targets) for spec, seed in tasks)
        for result in stream:
            results[(result.loss, result.seed)] = result
            bar.advance(task_id)
    return [results[(str(spec), seed)] for spec, seed in tasks]
