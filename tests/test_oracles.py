"""Every loss against independent oracles: the articles' formulas (tests/oracles.py), PyTorch's
own losses, and the peers kornia, MONAI and Keras 3, with their conventions mapped."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focalkit as fk

from . import oracles as O

GAMMAS = [0.0, 0.5, 1.0, 2.0, 3.0]


def _sigmoid_data(shape=(6, 5), soft=False, dtype=torch.float64):
    x = torch.randn(shape, dtype=dtype) * 3
    y = torch.rand(shape, dtype=dtype) if soft else (torch.rand(shape) < 0.3).to(dtype)
    return x, y


def _softmax_data(n=12, c=5, dtype=torch.float64):
    return torch.randn(n, c, dtype=dtype) * 2, torch.randint(0, c, (n,))


# ---------------------------------------------------------------------------------------- BCE
class TestBinaryCrossEntropy:
    @pytest.mark.parametrize("soft", [False, True])
    def test_formula(self, agree, soft):
        x, y = _sigmoid_data(soft=soft)
        pw = torch.rand(5, dtype=torch.float64) * 3
        agree("formula: BCE", fk.binary_cross_entropy(x, y, pos_weight=pw, reduction="none"), O.bce(x, y, pw))

    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    def test_torch(self, agree, reduction):
        x, y = _sigmoid_data(shape=(4, 3, 7), soft=True)
        pw = torch.rand(7, dtype=torch.float64) + 0.5
        expected = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction=reduction)
        agree("torch: binary_cross_entropy_with_logits",
              fk.binary_cross_entropy(x, y, pos_weight=pw, reduction=reduction), expected, rtol=1e-12, atol=1e-12)

    def test_label_smoothing_as_keras_defines_it(self, agree):
        x, y = _sigmoid_data()
        eps = 0.2
        agree("formula: BCE", fk.binary_cross_entropy(x, y, label_smoothing=eps, reduction="none"),
              O.bce(x, y * (1 - eps) + eps / 2))

    def test_keras(self, agree):
        keras = pytest.importorskip("keras")
        x, y = _sigmoid_data(dtype=torch.float32)
        loss = keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)
        expected = loss(y, x)  # Keras averages the last axis
        actual = fk.binary_cross_entropy(x, y, label_smoothing=0.1, reduction="none").mean(-1)
        agree("keras: BinaryCrossentropy", actual, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- focal
class TestSigmoidFocal:
    @pytest.mark.parametrize("gamma", GAMMAS)
    @pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
    @pytest.mark.parametrize("soft", [False, True])
    def test_formula(self, agree, gamma, alpha, soft):
        x, y = _sigmoid_data(soft=soft)
        actual = fk.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
        agree("formula: sigmoid focal", actual, O.sigmoid_focal(x, y, alpha, gamma), rtol=1e-10, atol=1e-12)

    @pytest.mark.parametrize("gamma", GAMMAS)
    def test_torchvision_formula(self, agree, gamma):
        x, y = _sigmoid_data(shape=(50, 4))
        agree("formula: torchvision sigmoid_focal_loss", fk.sigmoid_focal_loss(x, y, gamma=gamma, reduction="none"),
              O.torchvision_focal(x, y, 0.25, gamma), rtol=1e-10, atol=1e-12)

    def test_seed_001_segmentation_focal(self, agree):
        pred, mask = _sigmoid_data(shape=(2, 1, 16, 16))
        agree("formula: seed 001 (SAM-Med2D)", fk.sigmoid_focal_loss(pred, mask),
              O.sam_med2d_focal(pred, mask), rtol=1e-9, atol=1e-12)

    @pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
    def test_kornia(self, agree, gamma):
        kornia = pytest.importorskip("kornia")
        x, y = _sigmoid_data(shape=(8, 3))
        expected = kornia.losses.binary_focal_loss_with_logits(x, y, alpha=0.25, gamma=gamma, reduction="none")
        agree("kornia: binary_focal_loss_with_logits",
              fk.sigmoid_focal_loss(x, y, alpha=0.25, gamma=gamma, reduction="none"), expected, rtol=1e-6, atol=1e-9)

    @pytest.mark.parametrize("alpha", [None, 0.25])
    def test_monai(self, agree, alpha):
        monai_losses = pytest.importorskip("monai.losses")
        x, y = _sigmoid_data(shape=(2, 3, 5, 5))
        peer = monai_losses.FocalLoss(use_softmax=False, gamma=2.0, alpha=alpha, reduction="none")
        agree("monai: FocalLoss(sigmoid)", fk.sigmoid_focal_loss(x, y, alpha=alpha, reduction="none"),
              peer(x, y), rtol=1e-6, atol=1e-9)

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_keras(self, agree, smoothing):
        keras = pytest.importorskip("keras")
        x, y = _sigmoid_data(shape=(6, 4), dtype=torch.float32)
        peer = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5,
                                                   from_logits=True, label_smoothing=smoothing, reduction=None)
        actual = fk.sigmoid_focal_loss(x, y, alpha=0.3, gamma=1.5, label_smoothing=smoothing, reduction="none")
        agree("keras: BinaryFocalCrossentropy", actual.mean(-1), peer(y, x), rtol=1e-5, atol=1e-6)


class TestSoftmaxFocal:
    @pytest.mark.parametrize("gamma", GAMMAS)
    def test_formula(self, agree, gamma):
        x, t = _softmax_data()
        alpha = torch.rand(5, dtype=torch.float64)
        actual = fk.softmax_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="none")
        agree("formula: softmax focal", actual, O.softmax_loss(x, t, "focal", alpha, gamma=gamma),
              rtol=1e-10, atol=1e-12)

    def test_scalar_alpha_multiplies_every_class(self, agree):
        x, t = _softmax_data()
        agree("formula: softmax focal", fk.softmax_focal_loss(x, t, alpha=0.3, reduction="none"),
              0.3 * O.softmax_loss(x, t, "focal", gamma=2.0), rtol=1e-10, atol=1e-12)

    def test_probability_targets_per_class_form(self, agree):
        x, _ = _softmax_data()
        q = torch.softmax(torch.randn(12, 5, dtype=torch.float64), 1)
        alpha = torch.rand(5, dtype=torch.float64)
        expected = (alpha * q * O.softmax_per_class(x, "focal", gamma=2.0)).sum(1)
        agree("formula: softmax focal", fk.softmax_focal_loss(x, q, alpha=alpha, reduction="none"), expected,
              rtol=1e-10, atol=1e-12)

    @pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
    @pytest.mark.parametrize("alpha", [None, 0.25])
    def test_kornia(self, agree, gamma, alpha):
        kornia = pytest.importorskip("kornia")
        x, t = torch.randn(4, 5, 3, 3, dtype=torch.float64) * 2, torch.randint(0, 5, (4, 3, 3))
        expected = kornia.losses.focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="none").sum(1)
        ours_alpha = None if alpha is None else torch.tensor([1 - alpha] + [alpha] * 4)  # kornia: 1−α on class 0
        agree("kornia: focal_loss", fk.softmax_focal_loss(x, t, alpha=ours_alpha, gamma=gamma, reduction="none"),
              expected, rtol=1e-6, atol=1e-9)

    def test_monai(self, agree):
        monai_losses = pytest.importorskip("monai.losses")
        x, t = torch.randn(2, 4, 6, 6, dtype=torch.float64), torch.randint(0, 4, (2, 1, 6, 6))
        alpha = torch.tensor([0.1, 0.2, 0.3, 0.4])
        peer = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0, alpha=alpha, reduction="none")
        agree("monai: FocalLoss(softmax)", fk.softmax_focal_loss(x, t[:, 0], alpha=alpha, reduction="none"),
              peer(x, t).sum(1), rtol=1e-6, atol=1e-9)

    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_keras(self, agree, smoothing):
        keras = pytest.importorskip("keras")
        x = torch.randn(8, 4) * 2
        q = torch.softmax(torch.randn(8, 4) * 3, 1)
        peer = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=True,
                                                         label_smoothing=smoothing, reduction=None)
        actual = fk.softmax_focal_loss(x, q, alpha=0.25, gamma=2.0, label_smoothing=smoothing, reduction="none")
        agree("keras: CategoricalFocalCrossentropy", actual, peer(q, x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- CE
class TestCrossEntropy:
    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    @pytest.mark.parametrize("smoothing", [0.0, 0.15])
    @pytest.mark.parametrize("weighted", [False, True])
    @pytest.mark.parametrize("ignore", [False, True])
    def test_torch_class_ids(self, agree, reduction, smoothing, weighted, ignore):
        x, t = torch.randn(6, 4, 3, 2, dtype=torch.float64), torch.randint(0, 4, (6, 3, 2))
        if ignore:
            t[0, 0, 0] = t[2, 1, 1] = -100
        w = torch.rand(4, dtype=torch.float64) + 0.1 if weighted else None
        expected = F.cross_entropy(x, t, weight=w, label_smoothing=smoothing, reduction=reduction)
        actual = fk.cross_entropy(x, t, class_weight=w, label_smoothing=smoothing, reduction=reduction)
        agree("torch: cross_entropy", actual, expected, rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
    @pytest.mark.parametrize("smoothing", [0.0, 0.15])
    @pytest.mark.parametrize("weighted", [False, True])
    def test_torch_probability_targets(self, agree, reduction, smoothing, weighted):
        x = torch.randn(7, 5, 3, dtype=torch.float64)
        q = torch.softmax(torch.randn(7, 5, 3, dtype=torch.float64), 1)
        w = torch.rand(5, dtype=torch.float64) + 0.1 if weighted else None
        expected = F.cross_entropy(x, q, weight=w, label_smoothing=smoothing, reduction=reduction)
        actual = fk.cross_entropy(x, q, class_weight=w, label_smoothing=smoothing, reduction=reduction)
        agree("torch: cross_entropy", actual, expected, rtol=1e-12, atol=1e-12)

    def test_keras(self, agree):
        keras = pytest.importorskip("keras")
        x, t = torch.randn(8, 4), torch.randint(0, 4, (8,))
        peer = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)
        actual = fk.cross_entropy(x, t, label_smoothing=0.1, reduction="none")
        agree("keras: CategoricalCrossentropy", actual, peer(F.one_hot(t, 4).float(), x), rtol=1e-5, atol=1e-6)
        sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        agree("keras: SparseCategoricalCrossentropy", fk.cross_entropy(x, t, reduction="none"), sparse(t, x),
              rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- truncation
class TestHardTruncation:
    @pytest.mark.parametrize("threshold", [0.5, 0.6, 1.0])
    def test_sigmoid_article_loop(self, agree, threshold):
        x, y = _sigmoid_data(shape=(40,))
        x[:4] = 0.0  # p = ½ exactly: θ(0) = ½ at threshold 0.5
        actual = fk.sigmoid_hard_truncation_loss(x, y, threshold=threshold, reduction="none")
        agree("formula: hard truncation (loop)", actual, O.sigmoid_hard_truncation(x, y, threshold), rtol=1e-12)

    def test_sigmoid_half_at_the_boundary(self):
        x, y = torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
        loss = fk.sigmoid_hard_truncation_loss(x, y, reduction="none")
        torch.testing.assert_close(loss, torch.full((2,), 0.5 * torch.log(torch.tensor(2.0)).item(),
                                                    dtype=torch.float64))

    @pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
    def test_softmax(self, agree, threshold):
        x, t = _softmax_data(n=30)
        actual = fk.softmax_hard_truncation_loss(x, t, threshold=threshold, reduction="none")
        agree("formula: softmax hard truncation", actual, O.softmax_loss(x, t, "hard", threshold=threshold),
              rtol=1e-12)


class TestSoftTruncation:
    @pytest.mark.parametrize("k", [0.0, 0.5, 1.0, 3.0])
    @pytest.mark.parametrize("soft", [False, True])
    def test_sigmoid(self, agree, k, soft):
        x, y = _sigmoid_data(soft=soft)
        agree("formula: sigmoid softened truncation", fk.sigmoid_soft_truncation_loss(x, y, k=k, reduction="none"),
              O.sigmoid_soft_truncation(x, y, k), rtol=1e-10, atol=1e-12)

    @pytest.mark.parametrize("k", [0.0, 1.0, 2.5])
    @pytest.mark.parametrize("weighting", ["softmax", "complement"])
    def test_softmax(self, agree, k, weighting):
        x, t = _softmax_data()
        kind = "soft" if weighting == "softmax" else "complement"
        actual = fk.softmax_soft_truncation_loss(x, t, k=k, weighting=weighting, reduction="none")
        agree("formula: softmax softened truncation", actual, O.softmax_loss(x, t, kind, k=k), rtol=1e-10,
              atol=1e-12)


# ---------------------------------------------------------------------------------------- GHM-C
class TestGHMC:
    @pytest.mark.parametrize("bins", [1, 5, 10, 30])
    def test_article_loop(self, agree, bins):
        x, y = _sigmoid_data(shape=(64, 3))
        label_weight = (torch.rand(64, 3) > 0.2).double()
        expected = O.ghmc_article(x, y, label_weight, bins)
        agree("formula: GHM-C article loop", fk.ghmc_loss(x, y, bins=bins, sample_weight=label_weight), expected,
              rtol=1e-10, atol=1e-12)

    def test_paper_normalisation_divides_by_all_bins(self):
        y = torch.ones(200, dtype=torch.float64)
        x = torch.tensor([5.0, 4.0, -5.0], dtype=torch.float64)[torch.randint(0, 3, (200,))]  # g in 2 bins
        counts = torch.histc((torch.sigmoid(x) - y).abs(), bins=10, min=0, max=1)
        nonempty = int((counts > 0).sum())
        code = fk.ghmc_loss(x, y, bins=10)
        paper = fk.ghmc_loss(x, y, bins=10, bin_normalization="all")
        torch.testing.assert_close(paper, code * nonempty / 10)
        assert nonempty < 10  # otherwise the two forms agree and the test proves nothing

    def test_momentum_matches_authors_code_over_steps(self, agree):
        module = fk.GHMCLoss(bins=10, momentum=0.75)
        oracle = O.GHMCMomentumOracle(bins=10, momentum=0.75)
        for step in range(5):
            x, y = _sigmoid_data(shape=(32, 4))
            x = x * (step + 1) / 3  # the gradient-norm histogram moves between steps
            agree("formula: GHM-C momentum (mmdetection loop)", module(x, y), oracle(x, y), rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(module.running_counts.double(), torch.tensor(oracle.acc_sum, dtype=torch.float64))

    def test_gradient_norm_of_one_lands_in_the_top_bin(self):
        x = torch.tensor([-40.0, 40.0, 0.0], dtype=torch.float64)  # g = 1, 1 and ½
        y = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
        loss = fk.ghmc_loss(x, y, bins=10, reduction="none")
        bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        # two non-empty bins; top bin holds 2 of 3, middle bin 1 of 3
        torch.testing.assert_close(loss / bce, torch.tensor([0.75, 0.75, 1.5], dtype=torch.float64))
