"""Keras 3's tests of its cross-entropy and focal losses, ported to focalkit's Keras face.

Ported from keras-team/keras ``keras/src/losses/losses_test.py`` at commit
3bf075bb648ee6939b7b0698d5ef5d01adf75fcc (the same classes ship with the installed Keras 3.15.1):
``BinaryCrossentropyTest``, ``CategoricalCrossentropyTest``, ``SparseCategoricalCrossentropyTest``,
``BinaryFocalCrossentropyTest`` and ``CategoricalFocalCrossentropyTest``, with the peer's inputs, golden numbers
and tolerances (``assertAlmostEqual``: ``decimal=3`` unless given; ``assertAllClose``: ``atol = rtol = 1e-6``),
run on the torch backend (``tests/conftest.py`` sets ``KERAS_BACKEND=torch``). A last section holds Keras's
shape conventions the peer's tests rely on (``keras/src/losses/loss.py``: ``(n,)`` labels against ``(n, 1)``
predictions; unknown keyword arguments are a ``TypeError``), checked against the installed Keras.

Keras's conventions, mapped by the adapters below onto ``focalkit.keras``:

- Keras's losses take probabilities by default (``from_logits=False``); focalkit's take logits
  (``from_logits=True``): every adapter passes Keras's default explicitly;
- ``BinaryFocalCrossentropy(apply_class_balancing=False)`` (the default) has no α: ``SigmoidFocalLoss(alpha=None)``;
  with ``apply_class_balancing=True`` its ``alpha`` (default 0.25) is focalkit's α;
- ``CategoricalFocalCrossentropy``'s ``alpha`` (default 0.25) multiplies every class, as focalkit's scalar α
  does: ``SoftmaxFocalLoss(alpha=0.25)``;
- ``axis=-1`` (the only axis on focalkit's Keras face) is dropped; ``label_smoothing``, ``sample_weight``,
  ``reduction``, ``name`` and ``dtype`` pass through (the reductions are Keras's own).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # conftest sets KERAS_BACKEND=torch before keras is imported
    pytest.skip("these tests expect the torch backend", allow_module_level=True)

import torch  # noqa: E402

import focalkit as fk  # noqa: E402
from focalkit import keras as fkk  # noqa: E402

_NO_CLIP = (
    "from_logits=False: focalkit turns probabilities into logits exactly (README 'Keras 3', keras.py docstring), "
    "without Keras's clip to [1e-7, 1 - 1e-7]; y_pred holds an exact 1 for a 0 label, where Keras's loss is "
    "-log(1.2e-7) = 15.94 and focalkit's -log(6e-8) = 16.64"
)


NO_CLIP = pytest.mark.xfail(strict=True, raises=AssertionError, reason=_NO_CLIP)


def _axis(kwargs):
    axis = kwargs.pop("axis", -1)
    if axis != -1:
        pytest.skip("focalkit's Keras face has no axis option: the class axis is the last one")


def BinaryCrossentropy(from_logits=False, label_smoothing=0.0, **kwargs):
    _axis(kwargs)
    return fkk.BinaryCrossEntropy(label_smoothing=label_smoothing, from_logits=from_logits, **kwargs)


def CategoricalCrossentropy(from_logits=False, label_smoothing=0.0, **kwargs):
    _axis(kwargs)
    return fkk.CategoricalCrossEntropy(label_smoothing=label_smoothing, from_logits=from_logits, **kwargs)


def SparseCategoricalCrossentropy(from_logits=False, ignore_class=None, **kwargs):
    _axis(kwargs)
    if ignore_class is not None:
        pytest.skip("focalkit's Keras face has no ignore_class (the torch face's ignore_index: see "
                    "test_scce_ignore_class_torch_face)")
    return fkk.SparseCategoricalCrossEntropy(from_logits=from_logits, **kwargs)


def BinaryFocalCrossentropy(apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                            label_smoothing=0.0, **kwargs):
    _axis(kwargs)
    return fkk.SigmoidFocalLoss(alpha=alpha if apply_class_balancing else None, gamma=gamma,
                                label_smoothing=label_smoothing, from_logits=from_logits, **kwargs)


def CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                 **kwargs):
    _axis(kwargs)
    return fkk.SoftmaxFocalLoss(alpha=alpha, gamma=gamma, label_smoothing=label_smoothing, from_logits=from_logits,
                                **kwargs)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def assert_almost_equal(actual, desired, decimal=3):
    """Keras's ``TestCase.assertAlmostEqual``."""
    np.testing.assert_almost_equal(_np(actual), desired, decimal=decimal)


def assert_all_close(actual, desired, atol=1e-6, rtol=1e-6):
    """Keras's ``TestCase.assertAllClose``."""
    np.testing.assert_allclose(_np(actual), _np(desired), atol=atol, rtol=rtol)


def assert_dtype(x, dtype):
    assert keras.backend.standardize_dtype(x.dtype) == keras.backend.standardize_dtype(dtype)


def run_class_serialization_test(instance):
    """Keras's ``TestCase.run_class_serialization_test``: get_config / from_config and serialize / deserialize
    round trips give the same config and the same attributes."""
    config_json = json.dumps(instance.get_config(), sort_keys=True)
    ref_dir = set(dir(instance)) - {"__annotations__"}
    revived = type(instance).from_config(instance.get_config())
    assert json.dumps(revived.get_config(), sort_keys=True) == config_json
    assert set(dir(revived)) - {"__annotations__"} == ref_dir
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(instance)
    assert json.dumps(revived.get_config(), sort_keys=True) == config_json
    assert set(dir(revived)) - {"__annotations__"} == ref_dir


EYE3 = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
PROBS3 = np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]], dtype="float32")
LOGITS3 = np.array([[8.0, 1.0, 1.0], [0.0, 9.0, 1.0], [2.0, 3.0, 5.0]])
SPARSE3 = np.array([[0], [1], [2]])
WEIGHTS3 = np.array([[1.2], [3.4], [5.6]]).reshape((3, 1))

BCE_TRUE = np.array([1, 0, 1, 0]).reshape([2, 2])
BCE_PRED = np.array([1, 1, 1, 0], dtype="float32").reshape([2, 2])
BCE_TRUE_L = np.array([[1, 0, 1], [0, 1, 1]])
BCE_LOGITS = np.array([[10.0, -10.0, 10.0], [10.0, 10.0, -10.0]])


# ==============================================================================================================
# BinaryCrossentropyTest
# ==============================================================================================================


def test_bce_config():
    run_class_serialization_test(BinaryCrossentropy(name="bce", axis=-1))


@pytest.mark.parametrize("form", ["probabilities", "logits"])
def test_bce_all_correct_unweighted(form):
    y_true = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="float32")
    if form == "probabilities":
        assert_almost_equal(BinaryCrossentropy()(y_true, y_true), 0.0)
    else:
        logits = np.array([[10.0, -10.0, -10.0], [-10.0, 10.0, -10.0], [-10.0, -10.0, 10.0]])
        assert_almost_equal(BinaryCrossentropy(from_logits=True)(y_true, logits), 0.0)


@pytest.mark.parametrize(
    "case",
    ["probabilities", pytest.param("probabilities_0_1", marks=NO_CLIP), "logits"],
)
def test_bce_unweighted(case):
    if case == "probabilities":
        y_true = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="float32")
        y_pred = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.1], [0.1, 0.2, 0.7]], dtype="float32")
        assert_all_close(BinaryCrossentropy()(y_true, y_pred), 0.20046903)
    elif case == "probabilities_0_1":
        assert_almost_equal(BinaryCrossentropy()(BCE_TRUE, BCE_PRED), 3.98559)
    else:
        assert_almost_equal(BinaryCrossentropy(from_logits=True)(BCE_TRUE_L, BCE_LOGITS), 3.3333)


@pytest.mark.parametrize(
    "case", [pytest.param("probabilities_0_1", marks=NO_CLIP), "logits"]
)
def test_bce_scalar_weighted(case):
    if case == "probabilities_0_1":
        assert_almost_equal(BinaryCrossentropy()(BCE_TRUE, BCE_PRED, sample_weight=2.3), 9.1668)
    else:
        assert_almost_equal(BinaryCrossentropy(from_logits=True)(BCE_TRUE_L, BCE_LOGITS, sample_weight=2.3), 7.666)


@pytest.mark.parametrize(
    "case", [pytest.param("probabilities_0_1", marks=NO_CLIP), "logits"]
)
def test_bce_sample_weighted(case):
    if case == "probabilities_0_1":
        sample_weight = np.array([1.2, 3.4]).reshape((2, 1))
        assert_almost_equal(BinaryCrossentropy()(BCE_TRUE, BCE_PRED, sample_weight=sample_weight), 4.7827)
    else:
        weights = np.array([4, 3])
        assert_almost_equal(BinaryCrossentropy(from_logits=True)(BCE_TRUE_L, BCE_LOGITS, sample_weight=weights), 10.0)


def test_bce_no_reduction():
    loss = BinaryCrossentropy(from_logits=True, reduction=None)(BCE_TRUE_L, BCE_LOGITS)
    assert_all_close(loss, [0.0, 6.666], atol=1e-3)


def test_bce_label_smoothing():
    logits = np.array([[10.0, -10.0, -10.0]])
    y_true = np.array([[1, 0, 1]])
    label_smoothing = 0.1
    loss = BinaryCrossentropy(from_logits=True, label_smoothing=label_smoothing)(y_true, logits)
    assert_almost_equal(loss, (10.0 + 5.0 * label_smoothing) / 3.0)


def test_bce_shape_mismatch():
    y_true = np.array([[0], [1], [2]])
    y_pred = np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]])
    with pytest.raises(ValueError, match="must have the same shape"):
        BinaryCrossentropy()(y_true, y_pred)


def test_bce_dtype_arg():
    pytest.skip("the peer skips this on the torch backend: torch doesn't support bfloat16 for BinaryCrossentropy")


# ==============================================================================================================
# CategoricalCrossentropyTest
# ==============================================================================================================


def test_cce_config():
    run_class_serialization_test(CategoricalCrossentropy(name="cce", axis=-1))


@pytest.mark.parametrize("form", ["probabilities", "logits"])
def test_cce_all_correct_unweighted(form):
    y_true = EYE3.astype("int64")
    if form == "probabilities":
        y_pred = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        assert_almost_equal(CategoricalCrossentropy()(y_true, y_pred), 0.0)
    else:
        logits = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
        assert_almost_equal(CategoricalCrossentropy(from_logits=True)(y_true, logits), 0.0)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.3239), ("logits", 0.0573)])
def test_cce_unweighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(CategoricalCrossentropy()(EYE3, PROBS3), expected)
    else:
        assert_almost_equal(CategoricalCrossentropy(from_logits=True)(EYE3, LOGITS3), expected)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.7449), ("logits", 0.1317)])
def test_cce_scalar_weighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(CategoricalCrossentropy()(EYE3, PROBS3, sample_weight=2.3), expected)
    else:
        assert_almost_equal(CategoricalCrossentropy(from_logits=True)(EYE3, LOGITS3, sample_weight=2.3), expected)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 1.0696), ("logits", 0.31829)])
def test_cce_sample_weighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(CategoricalCrossentropy()(EYE3, PROBS3, sample_weight=WEIGHTS3), expected)
    else:
        loss = CategoricalCrossentropy(from_logits=True)(EYE3, LOGITS3, sample_weight=WEIGHTS3)
        assert_almost_equal(loss, expected)


def test_cce_no_reduction():
    loss = CategoricalCrossentropy(from_logits=True, reduction=None)(EYE3, LOGITS3)
    assert_all_close((0.001822, 0.000459, 0.169846), loss)


@pytest.mark.parametrize("container", ["array", "asarray"])
def test_cce_label_smoothing(container):
    # the peer's test_label_smoothing (np.array) and test_label_smoothing_ndarray (np.asarray)
    make = np.array if container == "array" else np.asarray
    logits = make([[100.0, -100.0, -100.0]])
    y_true = make([[1, 0, 0]])
    label_smoothing = 0.1
    loss = CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)(y_true, logits)
    assert_almost_equal(loss, 400.0 * label_smoothing / 3.0)


def test_cce_shape_mismatch():
    y_true = np.array([[0], [1], [2]])
    y_pred = np.array([[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]])
    with pytest.raises(ValueError, match="must have the same shape"):
        CategoricalCrossentropy()(y_true, y_pred)


def test_cce_dtype_arg():
    y_true = EYE3.astype("int64")
    y_pred = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
    assert_dtype(CategoricalCrossentropy(dtype="bfloat16")(y_true, y_pred), "bfloat16")


# ==============================================================================================================
# SparseCategoricalCrossentropyTest
# ==============================================================================================================


def test_scce_config():
    run_class_serialization_test(SparseCategoricalCrossentropy(name="scce"))


@pytest.mark.parametrize("form", ["probabilities", "logits"])
def test_scce_all_correct_unweighted(form):
    y_true = SPARSE3.astype("int64")
    if form == "probabilities":
        y_pred = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        assert_almost_equal(SparseCategoricalCrossentropy()(y_true, y_pred), 0.0, 3)
    else:
        logits = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
        assert_almost_equal(SparseCategoricalCrossentropy(from_logits=True)(y_true, logits), 0.0, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.3239), ("logits", 0.0573)])
def test_scce_unweighted(form, expected):
    y_true = np.array([0, 1, 2])
    if form == "probabilities":
        assert_almost_equal(SparseCategoricalCrossentropy()(y_true, PROBS3), expected, 3)
    else:
        assert_almost_equal(SparseCategoricalCrossentropy(from_logits=True)(y_true, LOGITS3), expected, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.7449), ("logits", 0.1317)])
def test_scce_scalar_weighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(SparseCategoricalCrossentropy()(SPARSE3, PROBS3, sample_weight=2.3), expected, 3)
    else:
        loss = SparseCategoricalCrossentropy(from_logits=True)(SPARSE3, LOGITS3, sample_weight=2.3)
        assert_almost_equal(loss, expected, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 1.0696), ("logits", 0.31829)])
def test_scce_sample_weighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(SparseCategoricalCrossentropy()(SPARSE3, PROBS3, sample_weight=WEIGHTS3), expected, 3)
    else:
        loss = SparseCategoricalCrossentropy(from_logits=True)(SPARSE3, LOGITS3, sample_weight=WEIGHTS3)
        assert_almost_equal(loss, expected, 3)


def test_scce_no_reduction():
    loss = SparseCategoricalCrossentropy(from_logits=True, reduction=None)(SPARSE3, LOGITS3)
    assert_all_close((0.001822, 0.000459, 0.169846), loss)


IGNORE_CLASS_CASES = [np.array([[-1, 2]]), np.array([[[-1], [2]]])]
IGNORE_CLASS_LOGITS = np.array([[[0.854, 0.698, 0.598], [0.088, 0.86, 0.018]]])


@pytest.mark.parametrize("y_true", IGNORE_CLASS_CASES, ids=["labels_1_2", "labels_1_2_1"])
def test_scce_ignore_class(y_true):
    loss = SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1, reduction=None)(y_true,
                                                                                            IGNORE_CLASS_LOGITS)
    assert_all_close([[0.0, 1.480129]], loss)


@pytest.mark.parametrize("y_true", IGNORE_CLASS_CASES, ids=["labels_1_2", "labels_1_2_1"])
def test_scce_ignore_class_torch_face(y_true):
    # the same case on focalkit's PyTorch face: ignore_class is cross_entropy's ignore_index, classes last
    target = torch.as_tensor(y_true).reshape(1, 2)
    loss = fk.cross_entropy(torch.tensor(IGNORE_CLASS_LOGITS, dtype=torch.float32), target, ignore_index=-1,
                            class_dim=-1, reduction="none")
    assert_all_close([[0.0, 1.480129]], loss.numpy())


SEG_TRUE = np.array([[0, 1, 1, 0], [1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1]])


def test_scce_binary_segmentation():
    y_pred = np.array([
        [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]],
        [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
        [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
        [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
    ])
    assert_all_close(SparseCategoricalCrossentropy()(SEG_TRUE, y_pred), 0.0)

    y_pred = np.array([
        [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.2, 0.8]],
        [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
        [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
        [[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.4]],
    ])
    expected = np.array([-np.log(0.2), -np.log(0.4)])
    assert_all_close(SparseCategoricalCrossentropy()(SEG_TRUE, y_pred), expected.sum() / 16.0)  # 16 pixels


def test_scce_binary_segmentation_different_axis():
    pytest.skip("focalkit's Keras face has no axis option (the peer's torch-backend case uses axis=0 and 1): "
                "the class axis is the last one")


MC_TRUE = np.array([[0, 1, 2, 0], [1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1]])


def test_scce_multi_class_segmentation():
    y_pred = np.array([
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    ])
    assert_all_close(SparseCategoricalCrossentropy()(MC_TRUE, y_pred), 0.0)

    y_pred = np.array([
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.0, 0.8]],
        [[0.7, 0.3, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]],
        [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0]],
    ])
    expected = np.array([-np.log(0.2), -np.log(0.3), -np.log(0.5)])
    assert_all_close(SparseCategoricalCrossentropy()(MC_TRUE, y_pred), expected.sum() / 16.0)  # 16 pixels


def test_scce_multi_class_segmentation_different_axis():
    pytest.skip("focalkit's Keras face has no axis option (the peer's torch-backend case uses axis=0 and 1): "
                "the class axis is the last one")


def test_scce_dtype_arg():
    y_true = SPARSE3.astype("int64")
    y_pred = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
    assert_dtype(SparseCategoricalCrossentropy(dtype="bfloat16")(y_true, y_pred), "bfloat16")


# ==============================================================================================================
# BinaryFocalCrossentropyTest
# ==============================================================================================================

BFCE_TRUE = np.asarray([1, 0, 1, 0]).reshape([2, 2])
BFCE_PRED = np.asarray([0.9, 0.8, 0.7, 0.2], dtype=np.float32).reshape([2, 2])
BFCE_TRUE_L = np.array([[1, 1, 0], [0, 1, 0]], dtype="float32")
BFCE_LOGITS = np.array([[1.5, -2.7, 2.9], [-3.8, 1.2, -4.5]])


def test_bfce_config():
    run_class_serialization_test(BinaryFocalCrossentropy(name="bfce"))


@pytest.mark.parametrize("form", ["probabilities", "logits"])
def test_bfce_all_correct_unweighted(form):
    y_true = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="float32")
    if form == "probabilities":
        assert_almost_equal(BinaryFocalCrossentropy(gamma=1.5)(y_true, y_true), 0.0, 3)
    else:
        logits = np.array([[100.0, -100.0, -100.0], [-100.0, 100.0, -100.0], [-100.0, -100.0, 100.0]])
        assert_almost_equal(BinaryFocalCrossentropy(gamma=2.0, from_logits=True)(y_true, logits), 0.0, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.268), ("logits", 0.799)])
def test_bfce_unweighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(BinaryFocalCrossentropy(gamma=2.0)(BFCE_TRUE, BFCE_PRED), expected, 3)
    else:
        loss = BinaryFocalCrossentropy(gamma=3.0, from_logits=True)(BFCE_TRUE_L, BFCE_LOGITS)
        assert_almost_equal(loss, expected, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.3296), ("logits", 2.565)])
def test_bfce_scalar_weighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(BinaryFocalCrossentropy(gamma=2.0)(BFCE_TRUE, BFCE_PRED, sample_weight=1.23), expected, 3)
    else:
        loss = BinaryFocalCrossentropy(gamma=3.0, from_logits=True)(BFCE_TRUE_L, BFCE_LOGITS, sample_weight=3.21)
        assert_almost_equal(loss, expected, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.34415), ("logits", 0.95977)])
def test_bfce_sample_weighted(form, expected):
    sample_weight = np.array([1.2, 3.4]).reshape((2, 1))
    if form == "probabilities":
        loss = BinaryFocalCrossentropy(gamma=2.0)(BFCE_TRUE, BFCE_PRED, sample_weight=sample_weight)
    else:
        loss = BinaryFocalCrossentropy(gamma=3.0, from_logits=True)(BFCE_TRUE_L, BFCE_LOGITS,
                                                                     sample_weight=sample_weight)
    assert_almost_equal(loss, expected, 3)


def test_bfce_no_reduction():
    loss = BinaryFocalCrossentropy(gamma=2.0, reduction=None)(BFCE_TRUE, BFCE_PRED)
    assert_all_close(loss, (0.515547, 0.020513))


def test_bfce_dtype_arg():
    pytest.skip("the peer skips this on the torch backend: torch doesn't support bfloat16 for "
                "BinaryFocalCrossentropy")


# ==============================================================================================================
# CategoricalFocalCrossentropyTest
# ==============================================================================================================


def test_cfce_config():
    run_class_serialization_test(CategoricalFocalCrossentropy(name="cfce"))


@pytest.mark.parametrize("form", ["probabilities", "logits"])
def test_cfce_all_correct_unweighted(form):
    y_true = EYE3.astype("int64")
    if form == "probabilities":
        y_pred = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype="float32")
        assert_almost_equal(CategoricalFocalCrossentropy(alpha=0.25, gamma=2.0)(y_true, y_pred), 0.0, 3)
    else:
        logits = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
        assert_almost_equal(CategoricalFocalCrossentropy(from_logits=True)(y_true, logits), 0.0, 3)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.02059), ("logits", 0.000345)])
def test_cfce_unweighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(CategoricalFocalCrossentropy()(EYE3, PROBS3), expected, 3)
    else:
        assert_almost_equal(CategoricalFocalCrossentropy(from_logits=True)(EYE3, LOGITS3), expected, 3)


@pytest.mark.parametrize(("form", "expected", "decimal"), [("probabilities", 0.047368, 3), ("logits", 0.000794, 4)])
def test_cfce_scalar_weighted(form, expected, decimal):
    if form == "probabilities":
        assert_almost_equal(CategoricalFocalCrossentropy()(EYE3, PROBS3, sample_weight=2.3), expected, decimal)
    else:
        loss = CategoricalFocalCrossentropy(from_logits=True)(EYE3, LOGITS3, sample_weight=2.3)
        assert_almost_equal(loss, expected, decimal)


@pytest.mark.parametrize(("form", "expected"), [("probabilities", 0.06987), ("logits", 0.001933)])
def test_cfce_sample_weighted(form, expected):
    if form == "probabilities":
        assert_almost_equal(CategoricalFocalCrossentropy()(EYE3, PROBS3, sample_weight=WEIGHTS3), expected, 3)
    else:
        loss = CategoricalFocalCrossentropy(from_logits=True)(EYE3, LOGITS3, sample_weight=WEIGHTS3)
        assert_almost_equal(loss, expected, 3)


def test_cfce_no_reduction():
    loss = CategoricalFocalCrossentropy(from_logits=True, reduction=None)(EYE3, LOGITS3)
    assert_all_close((1.5096224e-09, 2.4136547e-11, 1.0360638e-03), loss)


def test_cfce_label_smoothing():
    logits = np.array([[4.9, -0.5, 2.05]])
    y_true = np.array([[1, 0, 0]])
    loss = CategoricalFocalCrossentropy(from_logits=True, label_smoothing=0.1)(y_true, logits)
    assert_almost_equal(loss, 0.06685, 3)


def test_cfce_dtype_arg():
    logits = np.array([[4.9, -0.5, 2.05]])
    y_true = np.array([[1, 0, 0]])
    assert_dtype(CategoricalFocalCrossentropy(from_logits=True, dtype="bfloat16")(y_true, logits), "bfloat16")


# ==============================================================================================================
# Keras's shape and signature conventions (keras/src/losses/loss.py), against the installed Keras
# ==============================================================================================================

RANK_TRUE = np.array([1.0, 0.0, 1.0, 0.0])  # keras/src/losses/loss_test.py, test_rank_adjustment
RANK_PRED = np.array([0.1, 0.2, 0.3, 0.4], dtype="float32")

SIGMOID_PAIRS = [
    ("BinaryCrossentropy", lambda: BinaryCrossentropy(), lambda: keras.losses.BinaryCrossentropy()),
    ("BinaryFocalCrossentropy", lambda: BinaryFocalCrossentropy(gamma=2.0),
     lambda: keras.losses.BinaryFocalCrossentropy(gamma=2.0)),
    ("BinaryFocalCrossentropy_balanced", lambda: BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3),
     lambda: keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3)),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), SIGMOID_PAIRS, ids=[p[0] for p in SIGMOID_PAIRS])
@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [(RANK_TRUE, RANK_PRED), (RANK_TRUE, RANK_PRED[:, None]), (RANK_TRUE[:, None], RANK_PRED),
     (RANK_TRUE[:, None], RANK_PRED[:, None])],
    ids=["n_n", "n_n1", "n1_n", "n1_n1"],
)
def test_labels_and_predictions_rank_adjusted_as_keras(name, ours, theirs, y_true, y_pred):
    assert_all_close(ours()(y_true, y_pred), theirs()(y_true, y_pred))
    assert_all_close(ours()(y_true, y_pred, sample_weight=np.array([0.4, 0.3, 0.2, 0.1])),
                     theirs()(y_true, y_pred, sample_weight=np.array([0.4, 0.3, 0.2, 0.1])))


@pytest.mark.parametrize("labels", [np.array([0, 1, 2]), SPARSE3], ids=["n", "n1"])
def test_sparse_labels_n_and_n1_as_keras(labels):
    theirs = keras.losses.SparseCategoricalCrossentropy(reduction=None)(labels, PROBS3)
    assert_all_close(SparseCategoricalCrossentropy(reduction=None)(labels, PROBS3), theirs)


@pytest.mark.parametrize(
    "cls",
    [fkk.BinaryCrossEntropy, fkk.CategoricalCrossEntropy, fkk.SparseCategoricalCrossEntropy, fkk.SigmoidFocalLoss,
     fkk.SoftmaxFocalLoss],
    ids=lambda c: c.__name__,
)
def test_unknown_keyword_is_a_type_error(cls):
    # as keras.losses.BinaryCrossentropy(foo=1) is
    with pytest.raises(TypeError):
        keras.losses.BinaryCrossentropy(foo=1)
    with pytest.raises(TypeError):
        cls(foo=1)
