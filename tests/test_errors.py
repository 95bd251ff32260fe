"""Bad input: the exception type and a message naming the function, the argument, what was
expected and what came. Never a silent NaN."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import focalkit as fk

X2 = torch.randn(8, 3)
Y2 = (torch.rand(8, 3) > 0.5).float()
T1 = torch.randint(0, 3, (8,))

META = torch.device("meta")  # a device other than the logits' (no GPU needed)

ERRORS = [
    # (call, exception, message pattern)
    (lambda: fk.sigmoid_focal_loss(X2, Y2.to(META)), ValueError,
     r"sigmoid_focal_loss: target must be on the logits' device \(cpu\); got meta\."),
    (lambda: fk.binary_cross_entropy(X2, Y2, sample_weight=torch.ones(8, 1, device=META)), ValueError,
     r"binary_cross_entropy: sample_weight must be on the logits' device \(cpu\); got meta\."),
    (lambda: fk.binary_cross_entropy(X2, Y2, pos_weight=torch.ones(3, device=META)), ValueError,
     r"binary_cross_entropy: pos_weight must be on the logits' device \(cpu\); got meta\."),
    (lambda: fk.softmax_focal_loss(X2, T1.to(META)), ValueError,
     r"softmax_focal_loss: target must be on the logits' device \(cpu\); got meta\."),
    (lambda: fk.cross_entropy(X2, T1, sample_weight=torch.ones(8, device=META)), ValueError,
     r"cross_entropy: sample_weight must be on the logits' device"),
    (lambda: fk.sigmoid_focal_loss(X2, Y2[:, 0]), ValueError,
     r"sigmoid_focal_loss: logits and target must have the same shape; got logits \(8, 3\), target \(8,\)\."),
    (lambda: fk.binary_cross_entropy(X2, Y2 * 2), ValueError,
     r"binary_cross_entropy: target must be in \[0, 1\]; got values in \[0, 2\]\."),
    (lambda: fk.binary_cross_entropy(X2, Y2 - 1, ignore_index=255), ValueError,
     r"target must be in \[0, 1\] or ignore_index=255; got values in \[-1, 0\]"),
    (lambda: fk.binary_cross_entropy(X2, torch.full_like(Y2, float("nan"))), ValueError,
     r"binary_cross_entropy: target must be finite; got NaN or Inf values\."),
    (lambda: fk.sigmoid_focal_loss(X2, Y2 * 255), ValueError,
     r"target must be in \[0, 1\]; got values in \[0, 255\]\. If 255 marks elements to leave out .* "
     r"pass ignore_index=255\."),
    (lambda: fk.cross_entropy(X2, torch.full((8, 3), float("nan"))), ValueError,
     r"cross_entropy: probability target must be finite; got NaN or Inf values\."),
    (lambda: fk.sigmoid_focal_loss(torch.ones(8, 3, dtype=torch.long), Y2), TypeError,
     r"sigmoid_focal_loss: logits must be a floating-point tensor; got torch.int64\."),
    (lambda: fk.sigmoid_focal_loss(X2.numpy(), Y2), TypeError, r"logits must be a torch.Tensor; got ndarray"),
    (lambda: fk.sigmoid_focal_loss(torch.tensor([float("nan"), 0.0]), torch.ones(2)), ValueError,
     r"sigmoid_focal_loss: logits must be finite; got NaN or Inf values\."),
    (lambda: fk.cross_entropy(torch.tensor([[float("inf"), 0.0]]), torch.tensor([0])), ValueError,
     r"cross_entropy: logits must be finite"),
    (lambda: fk.softmax_focal_loss(torch.randn(4, 5), torch.tensor([0, 1, 7, -1])), ValueError,
     r"softmax_focal_loss: target must be in \[0, 5\) or ignore_index=-100; got values in \[-1, 7\]\."),
    (lambda: fk.softmax_focal_loss(X2, T1.float()), TypeError,
     r"softmax_focal_loss: class-id target must be an integer tensor; got torch.float32\. "
     r"For probabilities pass shape \(8, 3\)\."),
    (lambda: fk.cross_entropy(X2, torch.rand(8, 4)), ValueError,
     r"cross_entropy: probability target must have the logits' shape \(8, 3\); got \(8, 4\)\."),
    (lambda: fk.cross_entropy(X2, torch.rand(8, 3) * 3), ValueError, r"probability target must be in \[0, 1\]"),
    (lambda: fk.cross_entropy(X2, T1[:4]), ValueError,
     r"cross_entropy: class-id target must have shape \(8,\) \(logits \(8, 3\) without the class axis\); got \(4,\)\."),
    (lambda: fk.cross_entropy(X2, T1.bool()), TypeError, r"target must hold integer class ids or float probabilities"),
    (lambda: fk.cross_entropy(torch.randn(3), torch.tensor(1)), ValueError,
     r"cross_entropy: logits must be \(N, C, \*\) with the classes on class_dim; got shape \(3,\)\."),
    (lambda: fk.cross_entropy(torch.randn(4, 1), torch.zeros(4, dtype=torch.long)), ValueError,
     r"at least 2 classes"),
    (lambda: fk.cross_entropy(X2, T1, class_dim=3), ValueError, r"class_dim must index a dimension"),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, gamma=-1.0), ValueError,
     r"sigmoid_focal_loss: gamma must be in \[0, inf\); got -1\."),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, gamma="2"), TypeError, r"gamma must be a finite real number; got '2'"),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, normalizer=float("inf")), ValueError,
     r"normalizer must be a finite real number; got inf"),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, alpha=-1), ValueError,
     r"got -1\. torchvision's alpha=-1 \(no weighting\) is alpha=None here"),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, alpha=1.5), ValueError, r"alpha must be in \[0, 1\]; got 1\.5\."),
    (lambda: fk.softmax_focal_loss(X2, T1, alpha=[0.2, 0.3]), ValueError,
     r"softmax_focal_loss: alpha must have one value per class \(3\); got 2\."),
    (lambda: fk.softmax_focal_loss(X2, T1, alpha=[0.2, 0.3, 2.0]), ValueError,
     r"alpha values must be finite and in \[0, 1\]; got values in \[0\.2, 2\]\."),
    (lambda: fk.sigmoid_hard_truncation_loss(X2, Y2, threshold=0.0), ValueError,
     r"threshold must be in \(0, 1\]; got 0\."),
    (lambda: fk.softmax_hard_truncation_loss(X2, T1, threshold=1.2), ValueError, r"threshold must be in \(0, 1\]"),
    (lambda: fk.sigmoid_soft_truncation_loss(X2, Y2, k=-0.5), ValueError, r"k must be in \[0, inf\); got -0\.5\."),
    (lambda: fk.softmax_soft_truncation_loss(X2, T1, weighting="sigmoid"), ValueError,
     r"weighting must be one of 'softmax', 'complement'; got 'sigmoid'\."),
    (lambda: fk.ghmc_loss(X2, Y2, bins=0), ValueError, r"ghmc_loss: bins must be >= 1; got 0\."),
    (lambda: fk.ghmc_loss(X2, Y2, bins=2.5), TypeError, r"bins must be an integer; got 2\.5\."),
    (lambda: fk.ghmc_loss(X2, Y2, bin_normalization="paper"), ValueError, r"bin_normalization must be one of"),
    (lambda: fk.GHMCLoss(momentum=1.0), ValueError, r"GHMCLoss: momentum must be in \[0, 1\); got 1\."),
    (lambda: fk.GHMCLoss(momentum=-0.1), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda: fk.binary_cross_entropy(X2, Y2, reduction="avg"), ValueError,
     r"binary_cross_entropy: reduction must be one of 'none', 'mean', 'sum'; got 'avg'\."),
    (lambda: fk.SigmoidFocalLoss(reduction="avg"), ValueError,
     r"SigmoidFocalLoss: reduction must be one of 'none', 'mean', 'sum'; got 'avg'\."),
    (lambda: fk.cross_entropy(X2, T1, class_weight=[1.0, 2.0]), ValueError,
     r"cross_entropy: class_weight must have one value per class \(3\); got 2\."),
    (lambda: fk.CrossEntropyLoss(class_weight=[1.0, -2.0, 1.0]), ValueError,
     r"CrossEntropyLoss: class_weight values must be finite and in \[0, inf\)"),
    (lambda: fk.cross_entropy(X2, T1, class_weight=torch.ones(3, 1)), ValueError, r"class_weight must be 1-D"),
    (lambda: fk.cross_entropy(X2, T1, label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\]"),
    (lambda: fk.binary_cross_entropy(X2, Y2, sample_weight=torch.ones(8)), ValueError,
     r"sample_weight must broadcast to the per-element loss shape \(8, 3\); got \(8,\)\."),
    (lambda: fk.cross_entropy(X2, T1, sample_weight=torch.ones(8, 1)), ValueError,
     r"sample_weight must broadcast to the per-element loss shape \(8,\); got \(8, 1\)\."),
    (lambda: fk.binary_cross_entropy(X2, Y2, sample_weight=-torch.ones(8, 3)), ValueError,
     r"sample_weight must be finite and >= 0; got values in \[-1, -1\]\."),
    (lambda: fk.binary_cross_entropy(X2, Y2, pos_weight=torch.ones(2)), ValueError,
     r"pos_weight must broadcast to logits \(8, 3\)"),
    (lambda: fk.binary_cross_entropy(X2, Y2, pos_weight=-1.0), ValueError, r"pos_weight must be in \[0, inf\)"),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, normalizer=0.0), ValueError, r"normalizer must be in \(0, inf\); got 0\."),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, normalizer=torch.tensor(-2.0)), ValueError,
     r"normalizer must be finite and > 0; got -2\."),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, normalizer=3.0, reduction="sum"), ValueError,
     r"normalizer replaces the denominator of reduction='mean'; got reduction='sum'\."),
    (lambda: fk.sigmoid_focal_loss(X2, Y2, ignore_index=0.5), TypeError, r"ignore_index must be an integer"),
]


@pytest.mark.parametrize(("call", "exception", "pattern"), ERRORS, ids=[e[2][:60] for e in ERRORS])
def test_bad_input_raises(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


class TestValueChecksSwitch:
    def test_function(self):
        bad = torch.tensor([float("nan"), 0.0])
        fk.set_value_checks(False)
        try:
            assert not fk.value_checks_enabled()
            fk.sigmoid_focal_loss(bad, torch.ones(2))  # unchecked: no error, no sync
        finally:
            fk.set_value_checks(True)
        with pytest.raises(ValueError, match="logits must be finite"):
            fk.sigmoid_focal_loss(bad, torch.ones(2))

    def test_context_manager_restores(self):
        with fk.value_checks(False):
            fk.cross_entropy(X2, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]) * 0 + 1)
            assert not fk.value_checks_enabled()
        assert fk.value_checks_enabled()

    def test_shape_checks_stay_on(self):
        with fk.value_checks(False), pytest.raises(ValueError, match="same shape"):
            fk.sigmoid_focal_loss(X2, Y2[:, 0])

    def test_environment_variable(self):
        code = "import focalkit, sys; sys.exit(0 if not focalkit.value_checks_enabled() else 1)"
        env = {**os.environ, "FOCALKIT_CHECKS": "0"}
        assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0

    def test_an_unknown_environment_value_is_an_error(self):
        code = "import focalkit"
        env = {**os.environ, "FOCALKIT_CHECKS": "nope"}
        done = subprocess.run([sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True)
        assert done.returncode != 0
        assert "FOCALKIT_CHECKS must be one of 1, 0, true, false, on, off, yes, no; got 'nope'." in done.stderr

    def test_a_block_belongs_to_its_thread(self):
        """A block in one thread leaves another thread's checks on; two interleaved blocks restore each
        their own (before: one process-wide switch, left off by the interleaving)."""
        import threading

        inside, release = threading.Event(), threading.Event()
        second_inside, second_release = threading.Event(), threading.Event()

        def worker(entered, leave):
            with fk.value_checks(False):
                entered.set()
                leave.wait(10)

        first = threading.Thread(target=worker, args=(inside, release))
        second = threading.Thread(target=worker, args=(second_inside, second_release))
        first.start()
        assert inside.wait(10)
        second.start()
        assert second_inside.wait(10)
        assert fk.value_checks_enabled()
        with pytest.raises(ValueError, match="target must be in \\[0, 1\\]"):
            fk.sigmoid_focal_loss(X2, 2 * Y2)  # another thread's block does not switch this one off
        release.set()  # the first block ends before the second: the order that left checks off before
        first.join(10)
        second_release.set()
        second.join(10)
        assert fk.value_checks_enabled()
        seen = []
        thread = threading.Thread(target=lambda: seen.append(fk.value_checks_enabled()))
        fk.set_value_checks(False)  # the process default still reaches every thread
        try:
            thread.start()
            thread.join(10)
        finally:
            fk.set_value_checks(True)
        assert seen == [False]

    def test_meta_tensors_skip_value_checks_not_shape_checks(self):
        x = torch.empty(4, 3, device="meta")
        assert fk.sigmoid_focal_loss(x, torch.empty(4, 3, device="meta")).device.type == "meta"
        assert fk.softmax_focal_loss(x, torch.empty(4, dtype=torch.long, device="meta"),
                                     normalizer=torch.empty((), device="meta")).device.type == "meta"
        with pytest.raises(ValueError, match="same shape"):
            fk.sigmoid_focal_loss(x, torch.empty(4, device="meta"))


# -------------------------------------------------------------- probability targets sum to 1 (issue 22)
@pytest.mark.parametrize("fn", [fk.cross_entropy, fk.softmax_focal_loss, fk.softmax_hard_truncation_loss,
                                fk.softmax_soft_truncation_loss])
def test_probability_targets_that_do_not_sum_to_one_are_refused(fn):
    """They passed silently (a multi-hot row in a softmax loss is a different loss), though the README
    lists target ranges among the value checks."""
    x = torch.randn(4, 3, 2)
    q = torch.softmax(torch.randn(4, 3, 2), 1)
    q[2, :, 1] = torch.tensor([1.0, 1.0, 0.0])  # multi-hot
    with pytest.raises(ValueError, match=r"probability target must sum to 1 over the classes \(within 0\.001\), "
                                         r"or to 0 .*; a position's target sums to 2\. Normalise"):
        fn(x, q)
    with fk.value_checks(False):
        fn(x, q)  # unchecked: the caller's choice


def test_probability_targets_sum_within_their_own_rounding_and_zero_rows_add_nothing():
    x = torch.randn(64, 50)
    q = torch.softmax(torch.randn(64, 50), 1)
    for dtype in (torch.float16, torch.bfloat16):  # each value rounded: the sum is off by up to ε/2
        fk.cross_entropy(x.to(dtype), q.to(dtype))
    q[3] = 0.0  # a row of zeros, as MONAI's include_background=False leaves the background pixels
    per = fk.cross_entropy(x, q, reduction="none")
    assert per[3] == 0
    with pytest.raises(ValueError, match=r"sums to 1\.01"):
        fk.cross_entropy(x, q * 1.01)


def test_messages_show_no_negative_zero():
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]\."):
        fk.sigmoid_focal_loss(torch.zeros(3), torch.tensor([-1.0, -0.0, -0.0]))
