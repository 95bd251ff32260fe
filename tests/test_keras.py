"""The Keras 3 face: the same numbers as the PyTorch core, Keras's own losses where they overlap,
model.fit, save/load; on the torch backend here and on JAX in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import focalkit as fk

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # conftest sets KERAS_BACKEND=torch before keras is imported
    pytest.skip("these in-process tests expect the torch backend", allow_module_level=True)

from focalkit import keras as fkk  # noqa: E402


def _binary(n=16, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=3, size=(n, c)).astype("float32"), (rng.random((n, c)) < 0.3).astype("float32")


def _multi(n=16, c=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=2, size=(n, c)).astype("float32"), rng.integers(0, c, size=n)


def _np(t):
    return keras.ops.convert_to_numpy(t)


SIGMOID = [
    (fkk.BinaryCrossEntropy(label_smoothing=0.1), lambda x, y: fk.binary_cross_entropy(x, y, label_smoothing=0.1,
                                                                                      reduction="none")),
    (fkk.SigmoidFocalLoss(alpha=0.3, gamma=1.5), lambda x, y: fk.sigmoid_focal_loss(x, y, alpha=0.3, gamma=1.5,
                                                                                   reduction="none")),
    (fkk.SigmoidHardTruncationLoss(threshold=0.6),
     lambda x, y: fk.sigmoid_hard_truncation_loss(x, y, threshold=0.6, reduction="none")),
    (fkk.SigmoidSoftTruncationLoss(k=2.0), lambda x, y: fk.sigmoid_soft_truncation_loss(x, y, k=2.0, reduction="none")),
    (fkk.GHMCLoss(bins=5), None),
    (fkk.AsymmetricLoss(gamma_pos=1.0, gamma_neg=3.0, clip=0.1),
     lambda x, y: fk.asymmetric_loss(x, y, gamma_pos=1.0, gamma_neg=3.0, clip=0.1, reduction="none")),
    (fkk.Poly1FocalLoss(epsilon=-0.5, alpha=0.4, gamma=1.5),
     lambda x, y: fk.poly1_focal_loss(x, y, epsilon=-0.5, alpha=0.4, gamma=1.5, reduction="none")),
    (fkk.VarifocalLoss(alpha=0.6, gamma=1.5),
     lambda x, y: fk.varifocal_loss(x, y, alpha=0.6, gamma=1.5, reduction="none")),
    (fkk.VarifocalLoss(iou_weighted=False),
     lambda x, y: fk.varifocal_loss(x, y, iou_weighted=False, reduction="none")),
    (fkk.QualityFocalLoss(beta=1.5), lambda x, y: fk.quality_focal_loss(x, y, beta=1.5, reduction="none")),
    (fkk.SigmoidFocalLoss(alpha=0.3, gamma=3.0, gamma_hard=5.0, hard_threshold=0.3),
     lambda x, y: fk.sigmoid_focal_loss(x, y, alpha=0.3, gamma=3.0, gamma_hard=5.0, hard_threshold=0.3,
                                        reduction="none")),
]
SOFTMAX = [
    (fkk.SparseCategoricalCrossEntropy(), lambda x, t: fk.cross_entropy(x, t, reduction="none")),
    (fkk.SoftmaxFocalLoss(sparse=True, alpha=[0.1, 0.2, 0.3, 0.4], gamma=2.0),
     lambda x, t: fk.softmax_focal_loss(x, t, alpha=[0.1, 0.2, 0.3, 0.4], reduction="none")),
    (fkk.SoftmaxFocalLoss(sparse=True, gamma=3.0, gamma_hard=5.0),
     lambda x, t: fk.softmax_focal_loss(x, t, gamma=3.0, gamma_hard=5.0, reduction="none")),
    (fkk.SoftmaxHardTruncationLoss(sparse=True, threshold=0.4),
     lambda x, t: fk.softmax_hard_truncation_loss(x, t, threshold=0.4, reduction="none")),
    (fkk.SoftmaxSoftTruncationLoss(sparse=True, k=1.5),
     lambda x, t: fk.softmax_soft_truncation_loss(x, t, k=1.5, reduction="none")),
    (fkk.SoftmaxComplementTruncationLoss(sparse=True, k=2.0),
     lambda x, t: fk.softmax_soft_truncation_loss(x, t, k=2.0, weighting="complement", reduction="none")),
    (fkk.Poly1CrossEntropy(sparse=True, epsilon=2.0), lambda x, t: fk.poly1_cross_entropy(x, t, epsilon=2.0,
                                                                                         reduction="none")),
    (fkk.Poly1CrossEntropy(sparse=True, epsilon=1.0, label_smoothing=0.1),
     lambda x, t: fk.poly1_cross_entropy(x, t, label_smoothing=0.1, reduction="none")),
]


@pytest.mark.parametrize("pair", SIGMOID, ids=lambda p: type(p[0]).__name__)
@pytest.mark.parametrize("from_logits", [True, False])
def test_sigmoid_losses_equal_the_pytorch_core(pair, from_logits, agree):
    loss, core = pair
    x, y = _binary()
    if isinstance(loss, fkk.VarifocalLoss | fkk.QualityFocalLoss):  # IoU-like quality targets
        y = (y * np.random.default_rng(5).uniform(0.2, 1.0, y.shape)).astype("float32")
    loss = type(loss).from_config({**loss.get_config(), "from_logits": from_logits, "reduction": None})
    pred = x if from_logits else 1 / (1 + np.exp(-x.astype("float64")))
    if core is None:  # GHM-C: the stateless torch function on the same batch
        expected = fk.ghmc_loss(torch.tensor(x), torch.tensor(y), bins=5, reduction="none").mean(-1)
    else:
        expected = core(torch.tensor(x), torch.tensor(y)).mean(-1)
    agree("keras(torch): vs PyTorch core", _np(loss(y, pred.astype("float32"))), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pair", SOFTMAX, ids=lambda p: type(p[0]).__name__)
def test_softmax_losses_equal_the_pytorch_core(pair, agree):
    loss, core = pair
    x, t = _multi()
    loss = type(loss).from_config({**loss.get_config(), "reduction": None})
    agree("keras(torch): vs PyTorch core", _np(loss(t, x)), core(torch.tensor(x), torch.tensor(t)), rtol=1e-5,
          atol=1e-6)
    if "sparse" in loss.get_config():
        dense = type(loss).from_config({**loss.get_config(), "sparse": False})
        agree("keras(torch): vs PyTorch core", _np(dense(np.eye(4, dtype="float32")[t], x)),
              core(torch.tensor(x), torch.tensor(t)), rtol=1e-5, atol=1e-6)


def test_probabilities_in_keep_precision_where_keras_clips(agree):
    # p = 1e-9 for a positive: Keras clips at 1e-7 (loss 16.1), the exact loss is −log(1e-9) = 20.7
    p = np.array([[1e-9]], dtype="float32")
    y = np.ones((1, 1), dtype="float32")
    ours = _np(fkk.BinaryCrossEntropy(from_logits=False, reduction=None)(y, p))
    theirs = _np(keras.losses.BinaryCrossentropy(from_logits=False, reduction=None)(y, p))
    assert ours[0] == pytest.approx(-np.log(1e-9), rel=1e-4)
    assert theirs[0] < 17


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_matches_keras_binary_focal(smoothing, agree):
    x, y = _binary()
    ours = fkk.SigmoidFocalLoss(alpha=0.25, gamma=2.0, label_smoothing=smoothing, reduction=None)
    theirs = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2.0,
                                                  from_logits=True, label_smoothing=smoothing, reduction=None)
    agree("keras: BinaryFocalCrossentropy (focalkit.keras)", _np(ours(y, x)), _np(theirs(y, x)), rtol=1e-5,
          atol=1e-6)


def test_matches_keras_categorical_focal_and_crossentropy(agree):
    x, t = _multi()
    q = np.eye(4, dtype="float32")[t]
    ours = fkk.SoftmaxFocalLoss(alpha=0.25, gamma=2.0, reduction=None)
    theirs = keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=True, reduction=None)
    agree("keras: CategoricalFocalCrossentropy (focalkit.keras)", _np(ours(q, x)), _np(theirs(q, x)), rtol=1e-5,
          atol=1e-6)
    ce = fkk.CategoricalCrossEntropy(label_smoothing=0.1, reduction=None)
    kce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)
    agree("keras: CategoricalCrossentropy (focalkit.keras)", _np(ce(q, x)), _np(kce(q, x)), rtol=1e-5, atol=1e-6)


def test_sample_weight_and_reductions():
    x, y = _binary()
    w = np.linspace(0, 1, 16).astype("float32")
    per = _np(fkk.SigmoidFocalLoss(reduction=None)(y, x))
    total = _np(fkk.SigmoidFocalLoss(reduction="sum")(y, x, sample_weight=w))
    assert total == pytest.approx(float((per * w).sum()), rel=1e-5)
    mean = _np(fkk.SigmoidFocalLoss()(y, x, sample_weight=w))
    assert mean == pytest.approx(float((per * w).sum() / 16), rel=1e-5)  # Keras's sum_over_batch_size


ALL_CLASSES = [fkk.BinaryCrossEntropy, fkk.SigmoidFocalLoss, fkk.SigmoidHardTruncationLoss,
               fkk.SigmoidSoftTruncationLoss, fkk.GHMCLoss, fkk.CategoricalCrossEntropy,
               fkk.SparseCategoricalCrossEntropy, fkk.SoftmaxFocalLoss, fkk.SoftmaxHardTruncationLoss,
               fkk.SoftmaxSoftTruncationLoss, fkk.SoftmaxComplementTruncationLoss, fkk.AsymmetricLoss,
               fkk.Poly1FocalLoss, fkk.Poly1CrossEntropy]


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_options_are_named_and_unknown_ones_raise(cls):
    """``SigmoidFocalLoss(gama=3)`` was accepted and saved in ``get_config``; Keras raises ``TypeError``."""
    import inspect

    params = inspect.signature(cls).parameters.values()
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params)  # help() shows every option
    with pytest.raises(TypeError, match="gama"):
        cls(gama=3)
    loss = cls()
    again = cls.from_config(loss.get_config())
    assert again.get_config() == loss.get_config()
    assert "from_logits" in inspect.signature(cls).parameters


@pytest.mark.parametrize("cls", [fkk.BinaryCrossEntropy, fkk.SigmoidFocalLoss, fkk.GHMCLoss],
                         ids=lambda c: c.__name__)
def test_rank_1_labels_with_n_by_1_predictions_are_aligned_as_keras_does(cls):
    """``model.fit(X, y)`` passes ``y`` as ``(n,)`` and the model gives ``(n, 1)``: this was broadcast to
    ``(n, n)``, a wrong loss without a word."""
    x, y = _binary(n=12, c=1)
    ours = cls(reduction=None)
    torch.testing.assert_close(torch.as_tensor(_np(ours(y[:, 0], x))), torch.as_tensor(_np(ours(y, x))))
    assert _np(ours(y[:, 0], x)).shape == (12,)
    assert _np(ours(y, x[:, 0])).shape == (12,) or _np(ours(y, x[:, 0])).shape == ()
    if cls is fkk.SigmoidFocalLoss:
        theirs = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, from_logits=True, reduction=None)
        torch.testing.assert_close(torch.as_tensor(_np(ours(y[:, 0], x))), torch.as_tensor(_np(theirs(y[:, 0], x))),
                                   rtol=1e-5, atol=1e-6)


def test_mismatched_shapes_raise_like_keras():
    x = np.zeros((3, 3), dtype="float32")
    y = np.zeros((3, 1), dtype="float32")
    with pytest.raises(ValueError, match="must have the same shape"):
        keras.losses.BinaryCrossentropy(from_logits=True)(y, x)
    with pytest.raises(ValueError, match=r"SigmoidFocalLoss: y_true and y_pred must have the same shape. "
                                         r"Received: y_true.shape=\(3, 1\), y_pred.shape=\(3, 3\)"):
        fkk.SigmoidFocalLoss()(y, x)
    with pytest.raises(ValueError, match="CategoricalCrossEntropy: y_true"):
        fkk.CategoricalCrossEntropy()(np.zeros((3, 4), dtype="float32"), x)
    with pytest.raises(ValueError, match="SparseCategoricalCrossEntropy: sparse y_true"):
        fkk.SparseCategoricalCrossEntropy()(np.zeros((4,), dtype="int64"), x)
    with pytest.raises(ValueError, match="alpha must have one value per class"):
        fkk.SoftmaxFocalLoss(alpha=[0.5, 0.5])(np.eye(3, dtype="float32"), x)


@pytest.mark.parametrize("cls", [fkk.SparseCategoricalCrossEntropy,
                                 lambda **k: fkk.SoftmaxFocalLoss(sparse=True, **k)], ids=["ce", "focal"])
def test_sparse_labels_shaped_n_by_1(cls):
    """Sparse labels shaped ``(n, 1)`` (as Keras's own sparse losses take them) crashed."""
    x, t = _multi()
    a = _np(cls(reduction=None)(t[:, None], x))
    b = _np(cls(reduction=None)(t, x))
    np.testing.assert_allclose(a, b)
    k = _np(keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(t[:, None], x))
    if cls is fkk.SparseCategoricalCrossEntropy:
        np.testing.assert_allclose(a, k, rtol=1e-5, atol=1e-6)


def test_model_fit_with_rank_1_labels_learns_like_keras():
    """The issue's case: ``model.fit(X, y)`` with ``y`` of shape ``(n,)``; focal loss trained through focalkit
    reaches the AP of Keras's own focal loss (0.21 against 0.89 before the fix)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6)).astype("float32")
    y = ((X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=600)) > 1.3).astype("float32")
    aps = {}
    for name, loss in [("focalkit", fkk.SigmoidFocalLoss()),
                       ("keras", keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, from_logits=True))]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
        model.fit(X[:400], y[:400], epochs=15, batch_size=64, verbose=0)
        aps[name] = average_precision_score(y[400:], _np(model.predict(X[400:], verbose=0))[:, 0])
    assert aps["focalkit"] > 0.8
    assert abs(aps["focalkit"] - aps["keras"]) < 0.05, aps


def test_bad_options_raise_like_the_torch_face():
    with pytest.raises(ValueError, match="SigmoidFocalLoss: gamma must be in"):
        fkk.SigmoidFocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match=r"AsymmetricLoss: clip must be in \[0, 1\)"):
        fkk.AsymmetricLoss(clip=1.0)
    with pytest.raises(ValueError, match="AsymmetricLoss: gamma_neg must be in"):
        fkk.AsymmetricLoss(gamma_neg=-2)
    with pytest.raises(ValueError, match=r"Poly1CrossEntropy: epsilon must be in \[-1, inf\)"):
        fkk.Poly1CrossEntropy(epsilon=-2)
    with pytest.raises(ValueError, match="threshold must be in"):
        fkk.SoftmaxHardTruncationLoss(threshold=0.0)


def test_class_balanced_weights_for_fit_and_an_asl_fit():
    weights = fkk.class_balanced_weights([900, 90, 10], beta=0.99)
    assert list(weights) == [0, 1, 2]
    assert list(weights.values()) == pytest.approx(fk.class_balanced_weights([900, 90, 10], beta=0.99).tolist())
    # multi-label: 5 labels, two of them rare; ASL in model.fit lowers its own loss
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8)).astype("float32")
    y = (x[:, :5] + rng.normal(scale=0.5, size=(300, 5)) > [0.0, 0.5, 1.0, 1.5, 2.0]).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(5)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=fkk.AsymmetricLoss())
    history = model.fit(x, y, epochs=8, batch_size=64, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    torch.testing.assert_close(float(model.evaluate(x, y, verbose=0)),
                               float(fk.asymmetric_loss(torch.tensor(_np(model(x))), torch.tensor(y))),
                               rtol=1e-4, atol=1e-6)


def test_model_fit_lowers_the_loss_and_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 1.0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=fkk.SigmoidFocalLoss(alpha=0.25, gamma=2.0))
    history = model.fit(x, y, epochs=15, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, fkk.SigmoidFocalLoss)
    assert loaded.loss.get_config()["gamma"] == 2.0
    np.testing.assert_allclose(_np(loaded.predict(x, verbose=0)), _np(model.predict(x, verbose=0)), rtol=1e-6)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


JAX_SCRIPT = r"""
import json, numpy as np, keras
from focalkit import keras as fkk
rng = np.random.default_rng(0)
x = rng.normal(scale=3, size=(16, 3)).astype("float32"); y = (rng.random((16, 3)) < 0.3).astype("float32")
xm = rng.normal(scale=2, size=(16, 4)).astype("float32"); t = rng.integers(0, 4, size=16)
out = {"backend": keras.backend.backend(),
       "focal": np.asarray(fkk.SigmoidFocalLoss(alpha=0.3, gamma=1.5, reduction=None)(y, x)).tolist(),
       "soft": np.asarray(fkk.SigmoidSoftTruncationLoss(k=2.0, reduction=None)(y, x)).tolist(),
       "softmax_focal": np.asarray(fkk.SoftmaxFocalLoss(sparse=True, gamma=2.0, reduction=None)(t, xm)).tolist(),
       "ce": np.asarray(fkk.CategoricalCrossEntropy(label_smoothing=0.1, reduction=None)(np.eye(4)[t], xm)).tolist(),
       "asl": np.asarray(fkk.AsymmetricLoss(gamma_pos=0.5, reduction=None)(y, x)).tolist(),
       "poly": np.asarray(fkk.Poly1CrossEntropy(sparse=True, epsilon=2.0, reduction=None)(t, xm)).tolist()}
ends_p = np.array([[1.0], [0.0], [1.0], [0.0]], "float32"); ends_y = np.array([[0.0], [1.0], [1.0], [0.0]], "float32")
out["ends"] = [np.asarray(cls(from_logits=False, reduction=None)(ends_y, ends_p)).tolist()
               for cls in (fkk.BinaryCrossEntropy, fkk.SigmoidFocalLoss)]
out["ends_cce"] = np.asarray(fkk.CategoricalCrossEntropy(from_logits=False, reduction=None)(
    np.eye(2, dtype="float32"), np.array([[0.0, 1.0], [1.0, 0.0]], "float32"))).tolist()
w = np.where(np.arange(16) % 5 == 0, 0.0, 1.5).astype("float32")
out["ghmc_w"] = np.asarray(fkk.GHMCLoss(bins=5, reduction=None)(y, x, sample_weight=w)).tolist()
import jax
bad_t = np.array([0, -1, 3, 1] * 4)  # traced under jit: no check can raise, the bad samples' loss is NaN
out["jit_sparse"] = np.asarray(jax.jit(lambda a, b: fkk.SparseCategoricalCrossEntropy(reduction=None)(a, b))(
    bad_t, xm)).tolist()
bad_y = y.copy(); bad_y[2, 1] = 3.0
out["jit_binary"] = np.asarray(jax.jit(lambda a, b: fkk.SigmoidFocalLoss(reduction=None)(a, b))(bad_y, x)).tolist()
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss=fkk.SigmoidFocalLoss())
h = model.fit(x, y[:, :1], epochs=20, verbose=0)
out["fit"] = [h.history["loss"][0], h.history["loss"][-1]]
print(json.dumps(out))
"""


def test_jax_backend_gives_the_same_numbers(agree):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    rng = np.random.default_rng(0)  # the script's draws, in its order
    x = rng.normal(scale=3, size=(16, 3)).astype("float32")
    y = (rng.random((16, 3)) < 0.3).astype("float32")
    xm = rng.normal(scale=2, size=(16, 4)).astype("float32")
    t = rng.integers(0, 4, size=16)
    xt, yt, xmt, tt = map(torch.tensor, (x, y, xm, t))
    agree("keras(jax): vs PyTorch core", out["focal"],
          fk.sigmoid_focal_loss(xt, yt, alpha=0.3, gamma=1.5, reduction="none").mean(-1), rtol=1e-5, atol=1e-6)
    agree("keras(jax): vs PyTorch core", out["soft"],
          fk.sigmoid_soft_truncation_loss(xt, yt, k=2.0, reduction="none").mean(-1), rtol=1e-5, atol=1e-6)
    agree("keras(jax): vs PyTorch core", out["softmax_focal"], fk.softmax_focal_loss(xmt, tt, reduction="none"),
          rtol=1e-5, atol=1e-6)
    agree("keras(jax): vs PyTorch core", out["ce"], fk.cross_entropy(xmt, tt, label_smoothing=0.1, reduction="none"),
          rtol=1e-5, atol=1e-6)
    agree("keras(jax): vs PyTorch core", out["asl"],
          fk.asymmetric_loss(xt, yt, gamma_pos=0.5, reduction="none").mean(-1), rtol=1e-5, atol=1e-6)
    agree("keras(jax): vs PyTorch core", out["poly"], fk.poly1_cross_entropy(xmt, tt, epsilon=2.0, reduction="none"),
          rtol=1e-5, atol=1e-6)
    assert out["fit"][1] < out["fit"][0]
    # from_logits=False at p = 0 and 1: XLA flushes subnormals, so a clip at 1e-38 gave inf and NaN there
    ends = [_np(cls(from_logits=False, reduction=None)(*_ENDS)) for cls in (fkk.BinaryCrossEntropy,
                                                                             fkk.SigmoidFocalLoss)]
    assert np.isfinite(out["ends"]).all()
    agree("keras(jax): from_logits=False at p in {0, 1}", out["ends"], np.stack(ends), rtol=1e-5, atol=1e-6)
    assert np.isfinite(out["ends_cce"]).all()
    sparse = np.asarray(out["jit_sparse"])  # labels -1 and 3 (of 4 classes: 3 is valid) under jax.jit
    assert np.isnan(sparse[1::4]).all()
    assert np.isfinite(np.delete(sparse, np.s_[1::4])).all()
    agree("keras(jax): jit, valid samples beside bad labels", np.delete(sparse, np.s_[1::4]),
          np.delete(fk.cross_entropy(xmt, torch.tensor([0, -1, 3, 1] * 4), ignore_index=-1, reduction="none").numpy(),
                    np.s_[1::4]), rtol=1e-5, atol=1e-6)
    binary = np.asarray(out["jit_binary"])
    assert np.isnan(binary[2])
    assert np.isfinite(np.delete(binary, 2)).all()
    w = np.where(np.arange(16) % 5 == 0, 0.0, 1.5).astype("float32")
    agree("keras(jax): GHM-C weighted vs PyTorch core", out["ghmc_w"],
          fk.ghmc_loss(xt, yt, bins=5, sample_weight=torch.tensor(w)[:, None], reduction="none").mean(-1),
          rtol=1e-5, atol=1e-6)


_ENDS = (np.array([[0.0], [1.0], [1.0], [0.0]], "float32"), np.array([[1.0], [0.0], [1.0], [0.0]], "float32"))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_probabilities_at_both_ends_follow_one_rule(dtype):
    """``from_logits=False`` clips ``p`` to the dtype's normal numbers nearest 0 and 1: finite at both
    ends (the low end was a subnormal, 1e-38, which flush-to-zero reads as 0: inf / NaN under JAX)."""
    y, p = (a.astype(dtype) for a in _ENDS)
    got = _np(fkk.BinaryCrossEntropy(from_logits=False, reduction=None, dtype=dtype)(y, p))
    info = np.finfo(dtype)
    high = -np.log(info.tiny.astype(np.float64))  # y = 1 at p = 0: −log(tiny)
    assert np.isfinite(got).all()
    assert got[1] == pytest.approx(high, rel=2e-3)
    assert got[0] == pytest.approx(-np.log(np.float64(info.epsneg)), rel=2e-3)  # y = 0 at p = 1: −log(1 − p)
    cce = _np(fkk.CategoricalCrossEntropy(from_logits=False, reduction=None, dtype=dtype)(
        np.eye(2, dtype=dtype), np.array([[0.0, 1.0], [1.0, 0.0]], dtype)))
    assert cce == pytest.approx([high, high], rel=2e-3)


# ------------------------------------------------------------------- GHM-C with sample weights (issue 23)
@pytest.mark.parametrize("reduction", [None, "sum"])
def test_ghmc_sample_weight_zero_leaves_the_histogram_as_in_the_torch_face(reduction, agree):
    """A weight-0 sample was counted in the Keras histogram (0.464037 against the torch face's
    0.461241); now both faces drop it from the counts and from ``N``."""
    x, y = _binary(n=24, c=3, seed=4)
    w = np.random.default_rng(5).uniform(0.2, 2.0, size=24).astype("float32")
    w[[1, 4, 5, 11, 17, 20]] = 0.0
    per_sample = fk.ghmc_loss(torch.tensor(x), torch.tensor(y), bins=5, sample_weight=torch.tensor(w)[:, None],
                              reduction="none").mean(-1)  # Keras averages the last axis, then weights
    expected = per_sample if reduction is None else per_sample.sum()
    for weight in (w, w[:, None]):  # Keras takes (n,) and (n, 1) weights alike
        got = fkk.GHMCLoss(bins=5, reduction=reduction)(y, x, sample_weight=weight)
        got = _np(got).reshape(expected.shape)  # (n, 1) weights give Keras's (n, 1) unreduced losses
        agree("keras(torch): GHM-C weighted vs PyTorch core", got, expected, rtol=1e-5, atol=1e-6)
    # the torch face's mean is Σ w·β·BCE / Σ w; Keras's sum_over_batch_size divides by the batch size
    torch.testing.assert_close(torch.as_tensor(_np(fkk.GHMCLoss(bins=5)(y, x, sample_weight=w))).double(),
                               (per_sample.sum() / 24).double(), rtol=1e-5, atol=1e-6)


def test_ghmc_keras_mask_leaves_the_histogram():
    from keras.src.backend import set_keras_mask

    x, y = _binary(n=10, c=2, seed=6)
    keep = np.ones(10, dtype=bool)
    keep[[0, 3, 7]] = False
    pred = keras.ops.convert_to_tensor(x)
    set_keras_mask(pred, keras.ops.convert_to_tensor(keep))
    got = fkk.GHMCLoss(bins=4, reduction="sum")(y, pred)
    expected = fk.ghmc_loss(torch.tensor(x), torch.tensor(y), bins=4, sample_weight=torch.tensor(keep)[:, None]
                            .float(), reduction="none").mean(-1).sum()
    torch.testing.assert_close(torch.as_tensor(_np(got)).double(), expected.double(), rtol=1e-5, atol=1e-6)


def test_ghmc_sample_weight_of_another_shape_is_refused():
    x, y = _binary(n=6, c=3)
    with pytest.raises(ValueError, match=r"GHMCLoss: sample_weight must broadcast to the per-sample loss, "
                                         r"shaped \(6,\); got shape \(6, 3\)"):
        fkk.GHMCLoss()(y, x, sample_weight=np.ones((6, 3), dtype="float32"))


@pytest.mark.parametrize("pair", SIGMOID + SOFTMAX, ids=lambda p: type(p[0]).__name__)
def test_float64_losses_are_float64_exact(pair):
    """``dtype="float64"`` on the torch backend: ``keras.ops.mean`` and ``keras.ops.maximum`` compute
    float64 in float32 there, which left the sigmoid losses 2.7e-7 off (float32's rounding)."""
    loss, core = pair
    loss = type(loss).from_config({**loss.get_config(), "reduction": None, "dtype": "float64"})
    if core is None or isinstance(loss, fkk.GHMCLoss):
        core = lambda a, b: fk.ghmc_loss(a, b, bins=5, reduction="none")  # noqa: E731
    if isinstance(loss, fkk._SigmoidBase):
        x, y = (a.astype("float64") for a in _binary(n=64))
        expected = core(torch.tensor(x), torch.tensor(y)).mean(-1)
    else:
        x, y = _multi(n=64)
        x = x.astype("float64")
        expected = core(torch.tensor(x), torch.tensor(y))
    got = torch.as_tensor(_np(loss(y, x)))
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------- label values (issue 22)
_X = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")


@pytest.mark.parametrize(("loss", "labels", "message"), [
    (fkk.SparseCategoricalCrossEntropy(), np.array([0, -1, 2, 1]),
     r"SparseCategoricalCrossEntropy: sparse y_true must be class ids in \[0, 3\); got values in \[-1, 2\]"),
    (fkk.SoftmaxFocalLoss(sparse=True), np.array([0, 3, 2, 1]), r"class ids in \[0, 3\); got values in \[0, 3\]"),
    (fkk.SoftmaxFocalLoss(sparse=True), np.array([0.0, 1.5, 2.0, 1.0]), r"class ids in \[0, 3\)"),
    (fkk.SigmoidFocalLoss(), np.array([[0, 3, 1]] * 4, "float32"),
     r"SigmoidFocalLoss: y_true must be in \[0, 1\] \(0/1 or soft labels\); got values in \[0, 3\]"),
    (fkk.BinaryCrossEntropy(), np.array([[0, -1, 1]] * 4, "float32"), r"got values in \[-1, 1\]"),
    (fkk.GHMCLoss(), np.array([[0, np.nan, 1]] * 4, "float32"), r"got values in \[0, 1\] and NaN or Inf"),
    (fkk.CategoricalCrossEntropy(), np.array([[1, 1, 0]] * 4, "float32"),
     r"must sum to 1 over the last axis \(within 0\.001\), or to 0 .*sums to 2"),
    (fkk.SoftmaxSoftTruncationLoss(), np.array([[1.5, -0.5, 0]] * 4, "float32"), r"must be in \[0, 1\]"),
], ids=lambda v: type(v).__name__ if isinstance(v, keras.losses.Loss) else None)
def test_bad_label_values_raise_where_they_can_be_read(loss, labels, message):
    """They gave finite, even negative losses without a word (Keras itself raises on the torch backend
    for out-of-range sparse ids)."""
    with pytest.raises(ValueError, match=message):
        loss(labels, _X)


def test_bad_labels_of_left_out_samples_are_allowed_and_add_nothing():
    t = np.array([0, -1, 2, 1])
    w = np.array([1.0, 0.0, 1.0, 1.0])
    got = _np(fkk.SparseCategoricalCrossEntropy(reduction=None)(t, _X, sample_weight=w))
    expected = fk.cross_entropy(torch.tensor(_X), torch.tensor(t), ignore_index=-1, reduction="none")
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=1e-7)
    from keras.src.backend import set_keras_mask

    pred = keras.ops.convert_to_tensor(_X)
    set_keras_mask(pred, keras.ops.convert_to_tensor(w > 0))  # a masked position, as a Masking layer leaves it
    np.testing.assert_allclose(_np(fkk.SparseCategoricalCrossEntropy(reduction=None)(t, pred)), expected.numpy(),
                               rtol=1e-6, atol=1e-7)


def test_without_value_checks_bad_labels_give_nan_and_leave_the_rest():
    """The jit-safe form (what a traced function gets): NaN for the bad samples, visible in the logged
    loss; the other samples' losses and gradients are unchanged."""
    t = np.array([0, 3, 2, 1])
    x = torch.tensor(_X, requires_grad=True)
    with fk.value_checks(False):
        got = fkk.SparseCategoricalCrossEntropy(reduction=None)(t, x)
        binary = fkk.SigmoidFocalLoss(reduction=None)(np.array([[0, 3, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]],
                                                               "float32"), _X)
    assert torch.isnan(got[1])
    assert torch.isfinite(got[[0, 2, 3]]).all()
    torch.testing.assert_close(got[[0, 2, 3]], fk.cross_entropy(x, torch.tensor(t), ignore_index=3,
                                                                reduction="none")[[0, 2, 3]])
    got[[0, 2, 3]].sum().backward()
    assert torch.isfinite(x.grad).all()
    assert np.isnan(_np(binary)[0])
    assert np.isfinite(_np(binary)[1:]).all()


# ------------------------------------------------ from_logits on a sigmoid / softmax output (issue 22)
@pytest.mark.parametrize(("activation", "loss", "labels"), [
    ("sigmoid", fkk.SigmoidFocalLoss, (np.arange(8) % 3 == 0).astype("float32")[:, None]),
    ("softmax", fkk.SparseCategoricalCrossEntropy, np.arange(8) % 3),
])
def test_from_logits_on_an_activation_output_warns_and_uses_its_logits(activation, loss, labels):
    """A model ending in a sigmoid with the default ``from_logits=True`` read probabilities as logits:
    a different loss without a word (0.2736 against 0.3377 in a user's run)."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(1).normal(size=(8, 4)).astype("float32") * 20  # saturating outputs too
    units = 1 if activation == "sigmoid" else 3
    dense = keras.layers.Dense(units)
    logits = dense(x)
    probabilities = keras.layers.Activation(activation)(logits)
    assert hasattr(probabilities, "_keras_logits")
    right = _np(loss()(labels, logits))
    with pytest.warns(UserWarning, match=r"from_logits=True, but y_pred was produced by a sigmoid or softmax"):
        got = loss()(labels, probabilities)
    np.testing.assert_allclose(_np(got), right, rtol=1e-6)
    # from_logits=False takes the activation's logits too: exact where the probabilities saturate at 1
    np.testing.assert_allclose(_np(loss(from_logits=False)(labels, probabilities)), right, rtol=1e-6)
