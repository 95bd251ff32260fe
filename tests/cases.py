"""The losses under test, with the options that make each one interesting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import focalkit as fk


@dataclass(frozen=True)
class Case:
    name: str
    function: Any
    module: Any
    family: str  # "sigmoid" or "softmax"
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


SIGMOID = [
    Case("binary_cross_entropy", fk.binary_cross_entropy, fk.BinaryCrossEntropyLoss, "sigmoid",
         {"label_smoothing": 0.1}),
    Case("sigmoid_focal_loss", fk.sigmoid_focal_loss, fk.SigmoidFocalLoss, "sigmoid", {"alpha": 0.25, "gamma": 2.0}),
    Case("sigmoid_hard_truncation_loss", fk.sigmoid_hard_truncation_loss, fk.SigmoidHardTruncationLoss, "sigmoid",
         {"threshold": 0.6}),
    Case("sigmoid_soft_truncation_loss", fk.sigmoid_soft_truncation_loss, fk.SigmoidSoftTruncationLoss, "sigmoid",
         {"k": 1.5}),
    Case("ghmc_loss", fk.ghmc_loss, fk.GHMCLoss, "sigmoid", {"bins": 10}),
    Case("asymmetric_loss", fk.asymmetric_loss, fk.AsymmetricLoss, "sigmoid",
         {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}),
    Case("asymmetric_loss[fractional]", fk.asymmetric_loss, fk.AsymmetricLoss, "sigmoid",
         {"gamma_pos": 0.5, "gamma_neg": 2.5, "clip": 0.0}),
    Case("poly1_focal_loss", fk.poly1_focal_loss, fk.Poly1FocalLoss, "sigmoid",
         {"epsilon": 1.0, "alpha": 0.25, "gamma": 2.0}),
    Case("varifocal_loss", fk.varifocal_loss, fk.VarifocalLoss, "sigmoid", {"alpha": 0.75, "gamma": 2.0}),
    Case("varifocal_loss[unweighted]", fk.varifocal_loss, fk.VarifocalLoss, "sigmoid",
         {"alpha": 0.5, "gamma": 1.5, "iou_weighted": False}),
    Case("quality_focal_loss", fk.quality_focal_loss, fk.QualityFocalLoss, "sigmoid", {"beta": 2.0}),
    Case("quality_focal_loss[fractional]", fk.quality_focal_loss, fk.QualityFocalLoss, "sigmoid", {"beta": 1.5}),
    Case("sigmoid_focal_loss[adaptive]", fk.sigmoid_focal_loss, fk.SigmoidFocalLoss, "sigmoid",
         {"alpha": 0.25, "gamma": 3.0, "gamma_hard": 5.0, "hard_threshold": 0.3}),
]
SOFTMAX = [
    Case("cross_entropy", fk.cross_entropy, fk.CrossEntropyLoss, "softmax", {"label_smoothing": 0.1}),
    Case("softmax_focal_loss", fk.softmax_focal_loss, fk.SoftmaxFocalLoss, "softmax", {"gamma": 2.0}),
    Case("softmax_hard_truncation_loss", fk.softmax_hard_truncation_loss, fk.SoftmaxHardTruncationLoss, "softmax",
         {"threshold": 0.5}),
    Case("softmax_soft_truncation_loss", fk.softmax_soft_truncation_loss, fk.SoftmaxSoftTruncationLoss, "softmax",
         {"k": 1.0}),
    Case("softmax_soft_truncation_loss[complement]", fk.softmax_soft_truncation_loss, fk.SoftmaxSoftTruncationLoss,
         "softmax", {"k": 2.0, "weighting": "complement"}),
    Case("poly1_cross_entropy", fk.poly1_cross_entropy, fk.Poly1CrossEntropyLoss, "softmax", {"epsilon": 2.0}),
    Case("softmax_focal_loss[adaptive]", fk.softmax_focal_loss, fk.SoftmaxFocalLoss, "softmax",
         {"gamma": 3.0, "gamma_hard": 5.0}),
]
ALL = SIGMOID + SOFTMAX


def fraud_table():
    """A small user table for the command line's tests: 300 rows, a numeric column, a categorical one
    with missing cells, a numeric one with missing values, and a rare ``fraud`` yes/no label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({
        "amount": rng.normal(size=n),
        "channel": rng.choice(["web", "shop", None], size=n),
        "age": np.where(rng.random(n) < 0.1, np.nan, rng.normal(40, 10, size=n)),
    })
    frame["fraud"] = np.where(frame["amount"] + rng.normal(scale=0.5, size=n) > 1.6, "yes", "no")
    return frame
