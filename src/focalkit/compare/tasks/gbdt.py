"""Gradient-boosted trees (XGBoost or LightGBM) trained with each loss; the ``fit`` of :class:`BoostedTask`.

The protocol, the same for every loss:

- the same stratified 60/20/20 split per seed as the neural models (missing values left to the
  trees: both libraries route them);
- every loss starts from the same margin, the log prior odds of the training split (log priors
  for several classes), given as ``base_margin`` / ``init_score``;
- ``ce`` is the library's own objective (``binary:logistic`` / ``multi:softprob``, LightGBM's
  ``binary`` / ``multiclass``); ``weighted-ce`` the same with ``scale_pos_weight`` (two classes)
  or per-row class weights ``n / (C·n_c)``; ``logit-adjust`` the library's objective trained from
  the start margin plus ``τ·log prior`` and scored without it; ``focal``, ``hard``, ``soft`` and
  ``ghmc`` are :mod:`focalkit.gbm`'s objectives (several classes: ``focal`` only, the softmax form);
- the learning rate comes from the grid of :func:`focalkit.compare.run`; the number of rounds is
  chosen by early stopping on validation AP (scikit-learn's, computed each round; stop after
  ``patience`` rounds without a gain), and the model is cut back to the best round;
- trees: depth 4 (XGBoost) / 15 leaves (LightGBM), L2 1.0, row and column subsampling 0.8, a
  minimum Hessian sum per leaf of 1e-3 (focal loss's Hessians are small: XGBoost's default of 1
  would stop its trees from splitting), one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import gbm
from ..data import DataError, Dataset
from ..losses import LossSpec, SpecError, TrainingLoss
from ..metrics import average_precision
from .tabular import prepare_split

__all__ = ["LIBRARIES", "BoostedTask"]

LIBRARIES = ("xgboost", "lightgbm")
MULTICLASS = {"ce", "weighted-ce", "logit-adjust", "focal", "poly1"}


def _import(library: str):
    import importlib

    try:
        return importlib.import_module(library)
    except ImportError as err:
        raise DataError(f"--model {library}: {library} is not installed; pip install 'focalkit[{library}]'.") from err


@dataclass
class BoostedTask:
    """``fit(loss_fn, *, seed, lr)`` for :func:`focalkit.compare.run`: boosted trees on one seed's split."""

    data: Dataset
    library: str = "xgboost"
    max_rounds: int = 400
    patience: int = 30
    noise: float = 0.0

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            raise ValueError(f"library: expected one of {LIBRARIES}; got {self.library!r}.")
        _import(self.library)

    @property
    def description(self) -> str:
        trees = "depth-4 trees" if self.library == "xgboost" else "15-leaf trees"
        return (f"{self.library} ({trees}), up to {self.max_rounds} rounds with early stopping on validation AP "
                f"(patience {self.patience}), every loss from the prior's margin, stratified 60/20/20 split per seed")

    def check(self, spec: LossSpec) -> None:
        """:class:`SpecError` for a loss this task cannot train (before any training starts)."""
        if spec.name not in MULTICLASS and self.data.num_classes > 2:
            raise SpecError(f"--losses: {spec} has no multi-class boosting objective (focalkit.gbm has the softmax "
                            f"forms of focal loss and poly-1 only); this data has {self.data.num_classes} classes.")

    def __call__(self, loss_fn: TrainingLoss, *, seed: int, lr: float) -> dict:
        self.check(loss_fn.spec)
        split = prepare_split(self.data, seed, noise=self.noise)
        x_train, y_train = split.x_train.numpy().astype(np.float64), split.y_train.numpy()
        x_val, x_test = split.x_val.numpy().astype(np.float64), split.x_test.numpy().astype(np.float64)
        c = self.data.num_classes
        counts = np.maximum(np.bincount(y_train, minlength=c), 1).astype(np.float64)
        prior = counts / counts.sum()
        start = np.log(prior[1] / prior[0]) if c == 2 else np.log(prior)
        objective, params, weights, train_shift = self._objective(loss_fn, counts, prior, y_train, seed, lr)

        def margins(n: int, shift: float | np.ndarray = 0.0) -> np.ndarray:
            m = np.broadcast_to(np.asarray(start + shift, dtype=np.float64), (n,) if c == 2 else (n, c))
            return np.ascontiguousarray(m)

        def probs(raw: np.ndarray) -> np.ndarray:
            return gbm.predict_proba(raw)

        target = torch.from_numpy(y_train)
        train_raw = margins(len(y_train)).copy()  # the training margins without the training shift, one tree per round

        def objective_value(raw: np.ndarray) -> float:
            """The loss on the training rows at this round: focalkit's value of what the booster minimises."""
            with torch.no_grad():
                return float(loss_fn(torch.from_numpy(raw), target))

        history: list[tuple[float, float]] = []
        if self.library == "xgboost":
            import xgboost as xgb

            dtrain = xgb.DMatrix(x_train, label=y_train, weight=weights, base_margin=margins(len(y_train),
                                                                                            train_shift).reshape(-1))
            dval = xgb.DMatrix(x_val, base_margin=margins(len(x_val)).reshape(-1))
            dtest = xgb.DMatrix(x_test, base_margin=margins(len(x_test)).reshape(-1))
            booster = xgb.Booster({**params, "nthread": 1}, [dtrain])
            best_round, best_ap, since = 0, -1.0, 0
            base = margins(len(x_val))
            running = base.copy()  # the validation margins, one tree added per round (not all trees again)
            train_base = margins(len(y_train), train_shift)
            for rnd in range(self.max_rounds):
                booster.update(dtrain, rnd, fobj=objective)
                one = (rnd, rnd + 1)
                running = running + booster.predict(dval, output_margin=True, iteration_range=one) - base
                train_raw = train_raw + booster.predict(dtrain, output_margin=True, iteration_range=one).reshape(
                    train_raw.shape) - train_base
                ap = average_precision(split.y_val, probs(running))
                history.append((ap, objective_value(train_raw)))
                if ap > best_ap + 1e-12:
                    best_round, best_ap, since = rnd + 1, ap, 0
                else:
                    since += 1
                    if since >= self.patience:
                        break
            cut = (0, best_round)
            val_raw = booster.predict(dval, output_margin=True, iteration_range=cut)
            test_raw = booster.predict(dtest, output_margin=True, iteration_range=cut)
        else:
            import lightgbm as lgb

            train_set = lgb.Dataset(x_train, label=y_train, weight=weights,
                                    init_score=margins(len(y_train), train_shift).reshape(-1, order="F"),
                                    free_raw_data=False, params={"verbose": -1, "num_threads": 1})
            booster = lgb.Booster(params if objective is None else {**params, "objective": "none"}, train_set)
            best_round, best_ap, since = 0, -1.0, 0
            raw = margins(len(x_val)).copy()  # the validation margins, one tree added per round
            for rnd in range(self.max_rounds):
                booster.update(fobj=objective)
                one = {"start_iteration": rnd, "num_iteration": 1, "num_threads": 1}
                raw = raw + booster.predict(x_val, raw_score=True, **one)
                train_raw = train_raw + booster.predict(x_train, raw_score=True, **one)
                ap = average_precision(split.y_val, probs(raw))
                history.append((ap, objective_value(train_raw)))
                if ap > best_ap + 1e-12:
                    best_round, best_ap, since = len(history), ap, 0
                else:
                    since += 1
                    if since >= self.patience:
                        break
            last = {"num_iteration": best_round, "num_threads": 1}
            val_raw = booster.predict(x_val, raw_score=True, **last) + margins(len(x_val))
            test_raw = booster.predict(x_test, raw_score=True, **last) + margins(len(x_test))
        curve = [(i + 1, ap, value) for i, (ap, value) in enumerate(history)]
        return {"val": (split.y_val, probs(val_raw)), "test": (split.y_test, probs(test_raw)),
                "epoch": best_round, "curve": curve, "budget": self.max_rounds, "unit": "round"}

    def _objective(self, loss_fn: TrainingLoss, counts: np.ndarray, prior: np.ndarray, y_train: np.ndarray,
                   seed: int, lr: float):
        """``(custom objective or None, params, row weights or None, start-margin shift in training)``."""
        c = self.data.num_classes
        name, opts = loss_fn.name, loss_fn.options
        xgb = self.library == "xgboost"
        if xgb:
            params: dict = {"eta": lr, "max_depth": 4, "min_child_weight": 1e-3, "reg_lambda": 1.0,
                            "subsample": 0.8, "colsample_bytree": 0.8, "tree_method": "hist", "seed": seed,
                            "verbosity": 0}
            params.update({"objective": "binary:logistic"} if c == 2 else {"objective": "multi:softprob",
                                                                           "num_class": c})
        else:
            params = {"learning_rate": lr, "num_leaves": 15, "min_sum_hessian_in_leaf": 1e-3, "min_data_in_leaf": 5,
                      "lambda_l2": 1.0, "bagging_fraction": 0.8, "bagging_freq": 1, "feature_fraction": 0.8,
                      "seed": seed, "num_threads": 1, "verbose": -1, "deterministic": True,
                      "force_col_wise": True}
            params.update({"objective": "binary"} if c == 2 else {"objective": "multiclass", "num_class": c})
        weights = None
        shift: float | np.ndarray = 0.0
        objective = None
        if name == "weighted-ce":
            power = float(opts.get("power") or 1.0)
            if c == 2:
                params["scale_pos_weight"] = float((counts[0] / counts[1]) ** power)
            else:
                weights = ((counts.sum() / (c * counts)) ** power)[y_train]
        elif name == "logit-adjust":
            tau = float(opts.get("tau") if opts.get("tau") is not None else 1.0)
            shift = tau * (np.log(prior[1] / prior[0]) if c == 2 else np.log(prior))
        elif name == "focal":
            gamma = float(opts["gamma"] if opts.get("gamma") is not None else 2.0)
            hard = opts.get("gamma_hard")  # None: a fixed γ
            objective = (gbm.focal_objective(alpha=opts.get("alpha"), gamma=gamma, gamma_hard=hard) if c == 2 else
                         gbm.softmax_focal_objective(c, alpha=opts.get("alpha"), gamma=gamma, gamma_hard=hard))
        elif name == "hard":
            objective = gbm.hard_truncation_objective(threshold=float(opts.get("threshold") or 0.5))
        elif name == "soft":
            objective = gbm.soft_truncation_objective(k=float(opts.get("k") or 1.0))
        elif name == "ghmc":
            objective = gbm.ghmc_objective(bins=int(opts.get("bins") or 10))
        elif name == "asl":
            objective = gbm.asymmetric_objective(**{k: float(opts[k]) for k in ("gamma_pos", "gamma_neg", "clip")})
        elif name == "poly1":
            epsilon = float(opts["epsilon"] if opts.get("epsilon") is not None else 1.0)
            objective = (gbm.poly1_focal_objective(epsilon=epsilon, alpha=None, gamma=0.0) if c == 2 else
                         gbm.softmax_poly1_objective(c, epsilon=epsilon))
        elif name != "ce":
            raise SpecError(f"--losses: {loss_fn.spec} is not available for --model {self.library}.")
        if loss_fn.options.get("label_smoothing"):
            raise SpecError(f"--losses: {loss_fn.spec}: label smoothing is not available for --model {self.library}.")
        if objective is not None and xgb:
            params["disable_default_eval_metric"] = 1
            params.pop("objective")
            if c > 2:
                params["num_class"] = c
        return objective, params, weights, shift
