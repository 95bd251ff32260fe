"""Gradient-boosting objectives: closed forms against torch.autograd, trees against the built-ins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import focalkit as fk
from focalkit import gbm

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

OBJECTIVES = {
    "bce": (gbm.bce_objective(), lambda x, y: fk.binary_cross_entropy(x, y, reduction="sum")),
    "bce/pos_weight": (gbm.bce_objective(pos_weight=3.0),
                       lambda x, y: fk.binary_cross_entropy(x, y, pos_weight=3.0, reduction="sum")),
    "focal": (gbm.focal_objective(alpha=0.25, gamma=2.0), lambda x, y: fk.sigmoid_focal_loss(x, y, reduction="sum")),
    "focal/gamma=0.5": (gbm.focal_objective(alpha=None, gamma=0.5),
                        lambda x, y: fk.sigmoid_focal_loss(x, y, alpha=None, gamma=0.5, reduction="sum")),
    "focal/gamma=3": (gbm.focal_objective(alpha=0.6, gamma=3.0),
                      lambda x, y: fk.sigmoid_focal_loss(x, y, alpha=0.6, gamma=3.0, reduction="sum")),
    "soft": (gbm.soft_truncation_objective(k=1.5),
             lambda x, y: fk.sigmoid_soft_truncation_loss(x, y, k=1.5, reduction="sum")),
    "soft/k=1": (gbm.soft_truncation_objective(k=1.0),
                 lambda x, y: fk.sigmoid_soft_truncation_loss(x, y, k=1.0, reduction="sum")),
    "asl": (gbm.asymmetric_objective(), lambda x, y: fk.asymmetric_loss(x, y, reduction="sum")),
    "asl/clip=0": (gbm.asymmetric_objective(gamma_pos=1.0, gamma_neg=2.5, clip=0.0),
                   lambda x, y: fk.asymmetric_loss(x, y, gamma_pos=1.0, gamma_neg=2.5, clip=0.0, reduction="sum")),
    "asl/fractional": (gbm.asymmetric_objective(gamma_pos=0.5, gamma_neg=1.5, clip=0.2),
                       lambda x, y: fk.asymmetric_loss(x, y, gamma_pos=0.5, gamma_neg=1.5, clip=0.2,
                                                       reduction="sum")),
    "poly1_focal": (gbm.poly1_focal_objective(), lambda x, y: fk.poly1_focal_loss(x, y, reduction="sum")),
    "poly1_focal/gamma=0": (gbm.poly1_focal_objective(epsilon=-0.5, alpha=None, gamma=0.0),
                            lambda x, y: fk.poly1_focal_loss(x, y, epsilon=-0.5, alpha=None, gamma=0.0,
                                                             reduction="sum")),
    "varifocal": (gbm.varifocal_objective(alpha=0.6, gamma=1.5),
                  lambda x, y: fk.varifocal_loss(x, y, alpha=0.6, gamma=1.5, reduction="sum")),
    "varifocal/unweighted": (gbm.varifocal_objective(iou_weighted=False),
                             lambda x, y: fk.varifocal_loss(x, y, iou_weighted=False, reduction="sum")),
    "qfl": (gbm.quality_focal_objective(), lambda x, y: fk.quality_focal_loss(x, y, reduction="sum")),
    "qfl/fractional": (gbm.quality_focal_objective(beta=1.5),
                       lambda x, y: fk.quality_focal_loss(x, y, beta=1.5, reduction="sum")),
    "focal/adaptive": (gbm.focal_objective(gamma=3.0, gamma_hard=5.0),
                       lambda x, y: fk.sigmoid_focal_loss(x, y, gamma=3.0, gamma_hard=5.0, reduction="sum")),
    "focal/adaptive-fractional": (gbm.focal_objective(alpha=None, gamma=0.5, gamma_hard=2.5, hard_threshold=0.4),
                                  lambda x, y: fk.sigmoid_focal_loss(x, y, alpha=None, gamma=0.5, gamma_hard=2.5,
                                                                     hard_threshold=0.4, reduction="sum")),
}


def _autograd_grad_hess(fn, x: np.ndarray, y: np.ndarray):
    """First and (diagonal) second derivatives of Σℓ by torch.autograd, per element."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.float64)
    with fk.value_checks(False):
        (g,) = torch.autograd.grad(fn(xt, yt), xt, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), xt)  # elementwise losses: the Hessian is diagonal
    return g.detach().numpy(), h.numpy()


@pytest.mark.parametrize("name", list(OBJECTIVES))
@pytest.mark.parametrize("soft_labels", [False, True])
def test_gradient_and_hessian_equal_autograd(name, soft_labels, agree):
    objective, torch_loss = OBJECTIVES[name]
    rng = np.random.default_rng(0)
    x = rng.normal(scale=3.0, size=200)
    y = rng.random(200) if soft_labels else (rng.random(200) < 0.3).astype(float)
    _, grad, hess = objective.terms(x, y, order=2)
    g_ref, h_ref = _autograd_grad_hess(torch_loss, x, y)
    agree("gbm: gradient vs torch.autograd", grad, g_ref, rtol=1e-9, atol=1e-12)
    agree("gbm: Hessian vs torch.autograd", hess, h_ref, rtol=1e-7, atol=1e-10)
    loss = objective.terms(x, y, order=0)[0].sum()
    agree("gbm: loss vs PyTorch core", loss, torch_loss(torch.tensor(x), torch.tensor(y)), rtol=1e-12)


def test_hard_truncation_gradient_and_hessian():
    rng = np.random.default_rng(1)
    x = rng.normal(scale=3.0, size=100)
    y = (rng.random(100) < 0.5).astype(float)
    objective = gbm.hard_truncation_objective(threshold=0.6)
    _, grad, hess = objective.terms(x, y, order=2)
    g_ref, h_ref = _autograd_grad_hess(lambda a, b: fk.sigmoid_hard_truncation_loss(a, b, threshold=0.6,
                                                                                     reduction="sum"), x, y)
    np.testing.assert_allclose(grad, g_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hess, h_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(("gamma", "gamma_hard"), [(0.0, None), (1.0, None), (2.0, None), (3.0, 5.0), (0.0, 2.0)])
def test_softmax_focal_gradient_and_diagonal_hessian(gamma, gamma_hard, agree):
    rng = np.random.default_rng(2)
    x = rng.normal(scale=2.0, size=(30, 4))
    t = rng.integers(0, 4, size=30)
    alpha = [0.1, 0.2, 0.3, 0.4]
    objective = gbm.softmax_focal_objective(4, alpha=alpha, gamma=gamma, gamma_hard=gamma_hard)
    _, grad, hess = objective.terms(x, t.astype(float), order=2)
    xt = torch.tensor(x, requires_grad=True)
    loss = fk.softmax_focal_loss(xt, torch.tensor(t), alpha=torch.tensor(alpha, dtype=torch.float64), gamma=gamma,
                                 gamma_hard=gamma_hard, reduction="sum")
    (g,) = torch.autograd.grad(loss, xt, create_graph=True)
    diag = torch.stack([torch.autograd.grad(g[:, c].sum(), xt, retain_graph=True)[0][:, c] for c in range(4)], 1)
    agree("gbm: softmax gradient vs torch.autograd", grad, g.detach().numpy(), rtol=1e-9, atol=1e-12)
    agree("gbm: softmax diagonal Hessian vs torch.autograd", hess, diag.numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0])
def test_softmax_poly1_gradient_and_diagonal_hessian(epsilon, agree):
    rng = np.random.default_rng(4)
    x = rng.normal(scale=2.0, size=(30, 4))
    t = rng.integers(0, 4, size=30)
    objective = gbm.softmax_poly1_objective(4, epsilon=epsilon)
    loss_np, grad, hess = objective.terms(x, t.astype(float), order=2)
    xt = torch.tensor(x, requires_grad=True)
    loss = fk.poly1_cross_entropy(xt, torch.tensor(t), epsilon=epsilon, reduction="sum")
    (g,) = torch.autograd.grad(loss, xt, create_graph=True)
    diag = torch.stack([torch.autograd.grad(g[:, c].sum(), xt, retain_graph=True)[0][:, c] for c in range(4)], 1)
    agree("gbm: softmax gradient vs torch.autograd", grad, g.detach().numpy(), rtol=1e-9, atol=1e-12)
    agree("gbm: softmax diagonal Hessian vs torch.autograd", hess, diag.numpy(), rtol=1e-7, atol=1e-10)
    agree("gbm: loss vs PyTorch core", loss_np.sum(), loss.detach(), rtol=1e-12)
    if epsilon == 0.0:
        _, g0, h0 = gbm.softmax_focal_objective(4, gamma=0.0).terms(x, t.astype(float), order=2)
        np.testing.assert_allclose(grad, g0, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(hess, h0, rtol=1e-12, atol=1e-15)


def test_class_balanced_sample_weight():
    y = np.array([0, 0, 0, 1, 2, 0, 1])
    w = gbm.class_balanced_sample_weight(y, beta=0.9)
    expected = fk.class_balanced_weights([4, 2, 1], beta=0.9).double().numpy()[y]
    np.testing.assert_allclose(w, expected, rtol=1e-12)
    np.testing.assert_allclose(gbm.class_balanced_sample_weight([1, 0], class_counts=[90, 10], beta=0.99),
                               fk.class_balanced_weights([90, 10], beta=0.99).double().numpy()[[1, 0]], rtol=1e-12)
    with pytest.raises(ValueError, match="class_balanced_sample_weight: labels must be class ids"):
        gbm.class_balanced_sample_weight([0, 1.5])
    with pytest.raises(ValueError, match="class_counts has 2 classes; labels go up to 2"):
        gbm.class_balanced_sample_weight([0, 2], class_counts=[3, 4])
    with pytest.raises(ValueError, match="class_balanced_weights: class_counts must be finite and > 0"):
        gbm.class_balanced_sample_weight([0, 0, 2])  # class 1 has no row: no finite weight


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_asl_and_poly1_objectives_train_on_imbalanced_breast_cancer(library):
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import average_precision_score

    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    keep = (y == 0) | (rng.random(len(y)) < 0.15)  # malignant (0) is common here: make label 1 rare
    x, y = x[keep], y[keep].astype(float)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    train, test = slice(0, 180), slice(180, None)  # 265 rows, 53 of them label 1
    weights = gbm.class_balanced_sample_weight(y[train], beta=0.99)
    for objective in (gbm.asymmetric_objective(), gbm.asymmetric_objective(clip=0.0), gbm.poly1_focal_objective()):
        if library == "xgboost":
            booster = xgb.train({"base_score": 0.0, "max_depth": 2, "eta": 0.3, "disable_default_eval_metric": 1},
                                xgb.DMatrix(x[train], y[train], weight=weights), 30, obj=objective)
            raw = booster.predict(xgb.DMatrix(x[test]), output_margin=True)
        else:
            booster = lgb.train({"objective": objective, "num_leaves": 4, "learning_rate": 0.3, "verbose": -1},
                                lgb.Dataset(x[train], y[train], weight=weights), 30)
            raw = booster.predict(x[test])
        assert average_precision_score(y[test], gbm.predict_proba(raw)[:, 1]) > 0.8, objective


def test_focal_hessian_is_floored():
    objective = gbm.focal_objective(gamma=2.0, hess_floor=1e-3)
    x = np.linspace(-8, 8, 400)
    y = np.ones_like(x)
    _, _exact, _ = objective.terms(x, y, order=1)
    _, hess = objective(y, x)  # sklearn convention: (y_true, y_pred)
    assert (hess >= 1e-3).all()
    _, _, raw = objective.terms(x, y, order=2)
    assert (raw < 1e-3).any()  # the floor matters somewhere, or this test proves nothing
    np.testing.assert_allclose(hess[raw >= 1e-3], raw[raw >= 1e-3])


def _cancer(ratio: int = 8):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    y = (data.target == 0).astype(float)  # malignant positive
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    keep = np.sort(np.concatenate([rng.choice(pos, size=len(neg) // ratio, replace=False), neg]))
    return data.data[keep], y[keep]


def test_bce_objective_grows_the_same_trees_as_xgboost_binary_logistic(agree):
    x, y = _cancer()
    d = xgb.DMatrix(x, label=y)
    common = {"max_depth": 3, "eta": 0.3, "nthread": 1, "tree_method": "exact"}
    builtin = xgb.train({**common, "objective": "binary:logistic", "base_score": 0.5}, d, 15)
    custom = xgb.train({**common, "base_score": 0.0}, d, 15, obj=gbm.bce_objective())
    agree("xgboost: binary:logistic margins", custom.predict(d, output_margin=True),
          builtin.predict(d, output_margin=True), rtol=0, atol=1e-5)


def test_bce_objective_grows_the_same_trees_as_lightgbm_binary(agree):
    x, y = _cancer()
    params = {"num_leaves": 7, "learning_rate": 0.3, "verbose": -1, "num_threads": 1, "deterministic": True}
    builtin = lgb.train({**params, "objective": "binary", "boost_from_average": False},
                        lgb.Dataset(x, label=y, params={"verbose": -1}), 15)
    custom = lgb.train({**params, "objective": gbm.bce_objective()}, lgb.Dataset(x, label=y, params={"verbose": -1}),
                       15)
    agree("lightgbm: binary raw scores", custom.predict(x, raw_score=True), builtin.predict(x, raw_score=True),
          rtol=0, atol=1e-9)


def test_softmax_focal_with_gamma_zero_is_xgboost_softprob_gradient():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    t = rng.integers(0, 3, size=50).astype(float)
    grad, hess = gbm.softmax_focal_objective(3, gamma=0.0)(t, x)
    p = gbm.predict_proba(x)
    np.testing.assert_allclose(grad, p - np.eye(3)[t.astype(int)], atol=1e-12)
    np.testing.assert_allclose(hess, p * (1 - p), atol=1e-12)  # XGBoost uses 2·p(1−p): same direction


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_focal_objective_end_to_end_on_imbalanced_breast_cancer(library):
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import train_test_split

    x, y = _cancer(ratio=10)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    objective = gbm.focal_objective(alpha=0.25, gamma=2.0)
    prior = float(np.log(y_tr.mean() / (1 - y_tr.mean())))
    if library == "xgboost":
        d_tr, d_te = xgb.DMatrix(x_tr, label=y_tr), xgb.DMatrix(x_te, label=y_te)
        booster = xgb.train({"max_depth": 3, "eta": 0.2, "nthread": 1, "base_score": prior}, d_tr, 60,
                            obj=objective, custom_metric=objective.metric(), evals=[(d_te, "test")],
                            verbose_eval=False)
        raw = booster.predict(d_te, output_margin=True)
        # the sklearn wrapper treats base_score as a probability, even with a custom objective
        sk = xgb.XGBClassifier(n_estimators=30, max_depth=3, objective=objective, base_score=float(y_tr.mean()),
                               n_jobs=1)
        sk.fit(x_tr, y_tr)
    else:
        booster = lgb.train({"objective": objective, "num_leaves": 7, "learning_rate": 0.2, "verbose": -1,
                             "num_threads": 1}, lgb.Dataset(x_tr, label=y_tr, init_score=np.full(len(y_tr), prior),
                                                            params={"verbose": -1}), 60)
        raw = booster.predict(x_te, raw_score=True) + prior
        sk = lgb.LGBMClassifier(n_estimators=30, num_leaves=7, objective=objective, verbose=-1, n_jobs=1)
        sk.fit(x_tr, y_tr)
    ap = average_precision_score(y_te, gbm.predict_proba(raw)[:, 1])
    assert ap > 0.85
    assert objective.loss(raw, y_te) < objective.loss(np.full_like(raw, prior), y_te)


def test_sample_weights_multiply_gradient_and_hessian():
    x = np.array([0.5, -1.0, 2.0])
    y = np.array([1.0, 0.0, 1.0])
    w = np.array([2.0, 0.5, 0.0])
    d = xgb.DMatrix(x.reshape(-1, 1), label=y, weight=w)
    objective = gbm.focal_objective()
    g, h = objective(x, d)
    g0, h0 = objective(y, x)
    np.testing.assert_allclose(g, g0 * w)
    np.testing.assert_allclose(h, h0 * w)


@pytest.mark.parametrize("labels", [[0, 3, 0, 3], [-1, 1, 1, -1], [0, 1, np.nan, 1]], ids=str)
@pytest.mark.parametrize("make", [gbm.bce_objective, gbm.focal_objective, gbm.ghmc_objective,
                                  gbm.soft_truncation_objective, gbm.hard_truncation_objective],
                         ids=lambda f: f.__name__)
def test_sigmoid_objectives_reject_labels_outside_0_1(make, labels):
    """{0, 3} or {−1, 1} gave meaningless gradients without a word."""
    if np.isfinite(labels).all():  # XGBoost refuses a NaN label itself
        dtrain = xgb.DMatrix(np.zeros((4, 2)), label=np.asarray(labels, dtype=float))
        with pytest.raises(ValueError, match=r"labels must be in \[0, 1\].*got labels \{"):
            make()(np.zeros(4), dtrain)
    with pytest.raises(ValueError, match="labels must be in"):
        make()(np.asarray(labels, dtype=float), np.zeros(4))  # sklearn style (y_true, y_pred)


def test_sigmoid_objective_names_the_labels_it_saw():
    with pytest.raises(ValueError, match=r"focal_objective: labels must be in \[0, 1\] .*got labels \{-1, 1\}"):
        gbm.focal_objective()(np.array([-1.0, 1.0, 1.0]), np.zeros(3))


def test_sigmoid_objective_rejects_multi_column_scores():
    with pytest.raises(ValueError, match=r"one margin per label \(4\); got 12 values"):
        gbm.focal_objective()(np.array([0.0, 1.0, 1.0, 0.0]), np.zeros((4, 3)))


def test_softmax_objective_rejects_bad_labels_and_widths():
    objective = gbm.softmax_focal_objective(3)
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\) \(num_class=3\); got labels \{0, 1, 3\}"):
        objective(np.array([0.0, 1.0, 3.0]), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\).*got labels \{0, 0.5\}"):
        objective(np.array([0.0, 0.5]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"num_class=3 scores per label \(2 × 3\); got 4 values"):
        objective(np.array([0.0, 1.0]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="num_class must be >= 2"):
        gbm.softmax_focal_objective(1)
    with pytest.raises(ValueError, match=r"alpha must have one value per class \(3\); got 2"):
        gbm.softmax_focal_objective(3, alpha=[0.5, 0.5])


def test_softmax_objective_takes_flat_scores_as_older_xgboost_passes_them():
    x = np.random.default_rng(0).normal(size=(5, 3))
    t = np.array([0.0, 1.0, 2.0, 1.0, 0.0])
    g1, _ = gbm.softmax_focal_objective(3)(t, x)
    g2, _ = gbm.softmax_focal_objective(3)(t, x.reshape(-1))
    np.testing.assert_array_equal(g1, g2)


def test_lightgbm_predict_proba_with_a_custom_objective_is_raw_as_the_readme_says():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0.5).astype(float)
    clf = lgb.LGBMClassifier(objective=gbm.focal_objective(), n_estimators=10, verbose=-1).fit(X, y)
    raw = clf.predict(X, raw_score=True)
    assert (raw < 0).any()  # margins, not probabilities
    with pytest.warns(UserWarning, match="Returning raw scores"):
        np.testing.assert_allclose(np.asarray(clf.predict_proba(X)).reshape(-1)[: len(raw)], raw)
    proba = gbm.predict_proba(raw)[:, 1]
    assert ((proba > 0) & (proba < 1)).all()


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: gbm.ghmc_objective(bins=0), ValueError, "ghmc_objective: bins must be >= 1; got 0"),
    (lambda: gbm.ghmc_objective(bins=2.5), TypeError, "ghmc_objective: bins must be an integer; got 2.5"),
    (lambda: gbm.hard_truncation_objective(threshold=2), ValueError, r"threshold must be in \(0, 1\]; got 2"),
    (lambda: gbm.hard_truncation_objective(threshold=0), ValueError, r"threshold must be in \(0, 1\]; got 0"),
    (lambda: gbm.soft_truncation_objective(k=-1), ValueError, r"k must be in \[0, inf\); got -1"),
    (lambda: gbm.bce_objective(pos_weight=-2), ValueError, r"pos_weight must be in \[0, inf\); got -2"),
    (lambda: gbm.asymmetric_objective(clip=1), ValueError, r"^asymmetric_objective: clip must be in \[0, 1\)"),
    (lambda: gbm.asymmetric_objective(gamma_neg=-1), ValueError, "asymmetric_objective: gamma_neg"),
    (lambda: gbm.poly1_focal_objective(epsilon=-2), ValueError, r"^poly1_focal_objective: epsilon must be in"),
    (lambda: gbm.softmax_poly1_objective(1), ValueError, "^softmax_poly1_objective: num_class must be >= 2"),
    (lambda: gbm.asymmetric_objective(hess_floor=0), ValueError, "^asymmetric_objective: hess_floor must be > 0"),
])
def test_objective_options_are_checked_like_the_torch_losses(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ------------------------------------------------ the scikit-learn wrappers with sample weights (issue 23)
def _weighted_task(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    w = rng.uniform(0.1, 3.0, size=300)
    if name == "focal":
        return x, (x[:, 0] + rng.normal(size=300) > 1).astype(float), w, gbm.focal_objective(), {}
    y = np.digitize(x[:, 1] + rng.normal(size=300) * 0.5, [-0.5, 0.5]).astype(float)
    return x, y, w, gbm.softmax_focal_objective(3), {"num_class": 3}


@pytest.mark.parametrize("name", ["focal", "softmax"])
def test_lgbm_classifier_applies_sample_weight_as_lightgbm_train_does(name):
    """LightGBM 4's wrapper hands the weights to the objective and applies none itself: before, the
    weighted LGBMClassifier grew the unweighted model (0.63 / 1.09 from the weighted train one)."""
    x, y, w, objective, extra = _weighted_task(name)
    params = {"num_leaves": 7, "learning_rate": 0.3, "verbose": -1, "num_threads": 1, "deterministic": True}
    trained = lgb.train({**params, **extra, "objective": objective},
                        lgb.Dataset(x, label=y, weight=w, params={"verbose": -1}), 10)
    clf = lgb.LGBMClassifier(objective=objective, n_estimators=10, num_leaves=7, learning_rate=0.3, verbose=-1,
                             n_jobs=1, deterministic=True).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(clf.predict(x, raw_score=True), trained.predict(x, raw_score=True), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["focal", "softmax"])
def test_xgb_classifier_applies_sample_weight_as_xgboost_train_does(name):
    """XGBClassifier refused a custom objective without a ``sample_weight`` parameter."""
    x, y, w, objective, extra = _weighted_task(name)
    # for one margin the wrapper reads base_score as a probability (0.5 is the train API's margin 0), for
    # num_class margins as a margin
    trained = xgb.train({"max_depth": 3, "eta": 0.3, "nthread": 1, "tree_method": "exact",
                         "base_score": 0.0 if name == "focal" else 0.5,
                         **extra}, xgb.DMatrix(x, label=y, weight=w), 10, obj=objective)
    clf = xgb.XGBClassifier(objective=objective, n_estimators=10, max_depth=3, learning_rate=0.3, n_jobs=1,
                            tree_method="exact", base_score=0.5).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(clf.predict(x, output_margin=True),
                               trained.predict(xgb.DMatrix(x), output_margin=True), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["focal", "softmax"])
def test_metric_is_an_eval_metric_of_both_wrappers_with_weights(name):
    """``obj.metric()`` as ``eval_metric``: LGBMClassifier indexes the result as ``(name, value, higher)``
    (before: "'float' object is not subscriptable"), XGBClassifier formats it as a number; both pass
    the evaluation weights, and the value is the weighted loss of the final raw scores."""
    x, y, w, objective, _ = _weighted_task(name)
    metric = objective.metric()
    key = f"focalkit-{objective.family}"
    import inspect

    # LightGBM 4.7 takes eval_X / eval_y and deprecates eval_set, which older 4.x need
    evals = ({"eval_X": (x,), "eval_y": (y,)} if "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters
             else {"eval_set": [(x, y)]})
    clf = lgb.LGBMClassifier(objective=objective, n_estimators=5, num_leaves=7, verbose=-1, n_jobs=1).fit(
        x, y, sample_weight=w, eval_sample_weight=[w], eval_metric=metric, **evals)
    (history,) = clf.evals_result_.values()
    assert history[key][-1] == pytest.approx(objective.loss(clf.predict(x, raw_score=True), y, w), rel=1e-9)
    xclf = xgb.XGBClassifier(objective=objective, n_estimators=5, max_depth=3, n_jobs=1, eval_metric=metric).fit(
        x, y, sample_weight=w, eval_set=[(x, y)], sample_weight_eval_set=[w], verbose=False)
    (xhistory,) = xclf.evals_result().values()
    assert xhistory[key][-1] == pytest.approx(objective.loss(xclf.predict(x, output_margin=True), y, w), abs=2e-6)
    value = metric(y, xclf.predict(x, output_margin=True))  # scikit-learn style: a number
    assert isinstance(value, float)
    assert value == pytest.approx(objective.loss(xclf.predict(x, output_margin=True), y))
    assert tuple(value) == (key, float(value), False)


def test_sample_weight_beside_a_dmatrix_or_of_the_wrong_length_is_refused():
    objective = gbm.focal_objective()
    x, y = np.array([0.5, -1.0]), np.array([1.0, 0.0])
    with pytest.raises(ValueError, match="the weights come from it"):
        objective(x, xgb.DMatrix(x.reshape(-1, 1), label=y), np.ones(2))
    with pytest.raises(ValueError, match=r"sample_weight must hold one weight per label \(2\); got 3"):
        objective(y, x, np.ones(3))
