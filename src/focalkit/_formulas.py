r"""The math core: every loss family written once, with its closed-form derivatives.

Each formula is written against a small ops namespace (``ops.exp``, ``ops.sigmoid``, …) so that
the PyTorch kernels, the Keras losses and the gradient-boosting objectives evaluate the same
expressions. Nothing here checks inputs; :mod:`focalkit._inputs` does.

Sigmoid family
--------------
With ``s = σ(x)``, ``s̄ = 1 − s = σ(−x)``, ``n₊ = −log σ(x) = softplus(−x)``, ``n₋ = −log σ(−x) = softplus(x)``
and a target ``y ∈ [0, 1]``. ``s̄`` and ``n₊`` are computed as written on the right, never as ``1 − s`` or
``n₋ − x``, which cancel where ``x`` is large: every term below is then a sum of terms of one sign.

- cross-entropy: ``ℓ = w₊ y n₊ + (1−y) n₋``; ``ℓ' = (1−y) s − w₊ y s̄``; ``ℓ'' = (w₊ y + 1 − y) s s̄``.
  With ``w₊ = 1``: ``ℓ = softplus(x) − x y`` (computed as ``y n₊ + (1−y) n₋``), ``ℓ' = s − y``.
- focal: ``ℓ = a M B`` with ``B`` the cross-entropy, ``q = 1 − p_t = y s̄ + (1 − y) s``, ``M = q^γ``,
  ``a = α y + (1−α)(1−y)``. Since ``q' = (1 − 2y) s s̄``:
  ``ℓ' = a [γ q^{γ−1} (1−2y) s s̄ B + M (s − y)]``. ``q^{γ−1}`` is a product for integer ``γ`` (no
  division, no ``pow``); otherwise it is taken at ``max(q, tiny)``, where its factor ``s s̄`` is 0.
- hard truncation: ``ℓ = y λ₊ n₊ + (1−y) λ₋ n₋`` with constant ``λ₊ = θ(m − s)``, ``λ₋ = θ(s − 1 + m)``;
  ``ℓ' = (1−y) λ₋ s − y λ₊ s̄``.
- softened truncation: ``u = σ(Kx)``, ``ū = 1 − u``: ``ℓ = y ū n₊ + (1−y) u n₋``;
  ``ℓ' = y (−K u ū n₊ − ū s̄) + (1−y)(K u ū n₋ + u s)``.
- GHM-C: ``ℓ = β B``, ``ℓ' = β (s − y)`` with ``β`` from the gradient-norm histogram.

Softmax family
--------------
Per class ``c``: ``L_c = log p_c``, a weight ``w_c`` (1 for CE, ``(1−p_c)^γ`` for focal, ``θ(m − p_c)`` for
hard truncation, ``softmax(−Kx)_c`` or ``1 − softmax(Kx)_c`` for the softened forms) whose
derivative has the form ``∂w_c/∂x_j = φ_c (δ_{cj} − v_j)`` for a probability vector ``v``
(``v = p``, ``softmax(−Kx)`` or ``softmax(Kx)``). With per-class target weights ``q_c`` (one-hot or
probabilities, times ``α_c`` and class weights):

``ℓ = −Σ_c a_c L_c`` with ``a_c = q_c w_c``, and ``∂ℓ/∂x = (p Σa − a) + (v Σb − b)`` with ``b_c = q_c φ_c L_c``.

For focal, ``φ_c L_c = γ p_c (1 − p_c)^γ · r_c`` with ``r_c = −log p_c / (1 − p_c) ∈ [1, ∞)``, bounded
where it matters. With probability targets ``log(1 − p_c)`` of the leading class is a logsumexp over
the other classes (exact). With class ids only the target's is needed and it is taken as
``log(S − e_t) − log S`` (``e = exp(x − max)``, ``S = Σe``): one pass fewer, and it loses relative
precision only when ``p_t`` is within rounding of 1, where ``(1 − p_t)^γ`` makes the term vanish
(the loss and gradient stay finite: a 0 there gives ``w = 0``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "SIGMOID_FAMILIES",
    "SOFTMAX_FAMILIES",
    "ghmc_beta",
    "ghmc_bin_index",
    "is_one",
    "is_zero",
    "sigmoid_terms",
    "softmax_sparse_with_hessian",
    "softmax_terms",
    "softmax_terms_sparse",
]

SIGMOID_FAMILIES = ("bce", "focal", "hard", "soft", "ghmc")
SOFTMAX_FAMILIES = ("ce", "focal", "hard", "soft", "complement")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float))


def _is_whole(gamma: Any) -> bool:
    """A small whole exponent (products instead of ``pow``); never for a kernel's runtime argument."""
    return _is_number(gamma) and float(gamma).is_integer() and 0 <= gamma <= 8


def is_zero(v: Any) -> bool:
    """``v == 0`` for a number; ``False`` for a value a kernel takes at run time (a traced argument)."""
    return _is_number(v) and v == 0


def is_one(v: Any) -> bool:
    return _is_number(v) and v == 1


def _power(ops: Any, q: Any, exponent: float, tiny: float) -> Any:
    """``q ** exponent`` for ``q ≥ 0``: products for small whole exponents, else ``pow`` at ``max(q, tiny)``."""
    if _is_whole(exponent):
        n = int(exponent)
        if n == 0:
            return ops.ones_like(q)
        out = q
        for _ in range(n - 1):
            out = out * q
        return out
    return ops.power(ops.maximum(q, tiny), exponent)


def ghmc_bin_index(ops: Any, x: Any, y: Any, bins: int) -> Any:
    """GHM-C's bin of ``g = |σ(x) − y|``: ``floor(g · bins)``, the top edge (``g = 1``) in the last bin."""
    return ops.to_bin(ops.abs(ops.sigmoid(x) - y) * bins, bins)


def ghmc_beta(ops: Any, density: Any, n_valid: Any, divisor: Any) -> Any:
    """GHM-C's weight per bin, ``β_b = N / (density_b · divisor)``, 0 for an empty bin.

    ``divisor`` is the number of non-empty bins (the authors' code) or of all bins (the paper).
    """
    filled = density > 0
    return ops.where(filled, n_valid / ops.where(filled, density, 1.0) / divisor, 0.0)


def heaviside(ops: Any, z: Any) -> Any:
    """θ(z) with θ(0) = ½ (seed 000): ``(sign(z) + 1) / 2``."""
    return (ops.sign(z) + 1.0) * 0.5


def sigmoid_terms(ops: Any, family: str, x: Any, y: Any, *, order: int = 1, pos_weight: Any = None,
                  alpha: float | None = None, gamma: float = 2.0, threshold: float = 0.5, k: float = 1.0,
                  beta: Any = None, tiny: float = 1e-30) -> tuple[Any, Any, Any]:
    """Per-element loss, and its first (``order ≥ 1``) and second (``order ≥ 2``) derivative in ``x``.

    ``y`` is the (already smoothed) target in [0, 1]; unused derivatives are returned as ``None``.
    """
    s = ops.sigmoid(x)
    n_neg = ops.softplus(x)  # −log σ(−x)
    n_pos = ops.softplus(-x)  # −log σ(x), never softplus(x) − x: that cancels for large x
    ybar = 1.0 - y
    plain = (family == "bce" and pos_weight is None) or family == "ghmc"
    # σ(−x) itself, never 1 − σ(x): exact where σ(x) rounds to 1 (not formed where nothing needs it)
    sbar = ops.sigmoid(-x) if not plain or order >= 2 else None
    if plain or family == "focal":
        bce = ops.fma(ybar * n_neg, y, n_pos)  # y n₊ + (1−y) n₋: both terms ≥ 0, no cancellation for any y
        # s − y: as PyTorch's BCE (an absolute error of one rounding of 1) for the plain forms; focal's
        # gradient lives in the tail where that cancels, so it takes (1 − y) σ(x) − y σ(−x)
        dbce = (s - y if plain else ybar * s - y * sbar) if order >= 1 else None
        d2bce = s * sbar if order >= 2 else None
    if family == "bce" and pos_weight is None:
        return bce, dbce, d2bce
    if family == "bce":
        loss = pos_weight * y * n_pos + ybar * n_neg
        grad = ybar * s - pos_weight * y * sbar if order >= 1 else None
        hess = (pos_weight * y + ybar) * s * sbar if order >= 2 else None
        return loss, grad, hess
    if family == "ghmc":
        return beta * bce, beta * dbce if order >= 1 else None, beta * d2bce if order >= 2 else None
    if family == "focal":
        t = 1.0 - 2.0 * y
        q = ops.fma(ybar * s, y, sbar)  # 1 − p_t = y σ(−x) + (1−y) σ(x): no cancellation when p_t is near 1
        m = _power(ops, q, gamma, tiny)
        a = 1.0 if alpha is None else (1.0 - alpha) + y * (2.0 * alpha - 1.0)
        abce = a * bce
        loss = m * abce
        if order == 0:
            return loss, None, None
        dq = t * s * sbar
        if is_zero(gamma):
            grad = a * dbce
        else:
            m1 = _power(ops, q, gamma - 1.0, tiny)  # q^{γ−1}
            grad = (gamma * m1 * dq) * abce + (a * m) * dbce
        if order == 1:
            return loss, grad, None
        # ℓ'' = a [M'' B + 2 M' B' + M B''], M' = γ q^{γ−1} q', M'' = γ(γ−1) q^{γ−2} q'² + γ q^{γ−1} q''
        d2q = dq * (sbar - s)
        dm = gamma * _power(ops, q, gamma - 1.0, tiny) * dq if not is_zero(gamma) else 0.0 * q
        d2m = (gamma * (gamma - 1.0) * _power(ops, q, gamma - 2.0, tiny) * dq * dq
               + gamma * _power(ops, q, gamma - 1.0, tiny) * d2q) if not is_zero(gamma) else 0.0 * q
        hess = a * (d2m * bce + 2.0 * dm * dbce + m * d2bce)
        return loss, grad, hess
    if family == "hard":
        keep_pos = heaviside(ops, threshold - s)
        keep_neg = heaviside(ops, s - (1.0 - threshold))
        loss = y * keep_pos * n_pos + ybar * keep_neg * n_neg
        grad = ybar * keep_neg * s - y * keep_pos * sbar if order >= 1 else None
        hess = (y * keep_pos + ybar * keep_neg) * s * sbar if order >= 2 else None
        return loss, grad, hess
    if family == "soft":
        if is_one(k):
            u, ubar = s, sbar
        else:
            u = ops.sigmoid(k * x)
            ubar = ops.sigmoid(-(k * x))
        loss = y * ubar * n_pos + ybar * u * n_neg
        if order == 0:
            return loss, None, None
        uu = u * ubar
        grad = y * (-k * uu * n_pos - ubar * sbar) + ybar * (k * uu * n_neg + u * s)
        if order == 1:
            return loss, grad, None
        duu = k * uu * (ubar - u)
        hess = (y * (-k * duu * n_pos + 2.0 * k * uu * sbar + ubar * s * sbar)
                + ybar * (k * duu * n_neg + 2.0 * k * uu * s + u * s * sbar))
        return loss, grad, hess
    raise ValueError(f"sigmoid_terms: unknown family {family!r}")


def log_one_minus_softmax(ops: Any, x: Any, log_p: Any, axis: int) -> Any:
    """``log(1 − softmax(x)_c)`` for every class: exact for the leading class (a logsumexp over the
    others), ``log1p(−p_c)`` for the rest, where ``p_c ≤ ½``."""
    is_top = ops.one_hot_argmax(x, axis)
    z = x - ops.max(x, axis)  # the two logsumexps stay O(1): no rounding at the logits' own scale
    lse = ops.logsumexp(z, axis)
    lead = ops.logsumexp(ops.where(is_top, -math.inf, z), axis) - lse
    safe = ops.where(is_top, -1.0, log_p)
    return ops.where(is_top, lead, ops.log1p(-ops.exp(safe)))


def softmax_terms(ops: Any, family: str, x: Any, q: Any, *, axis: int = 1, order: int = 1, gamma: float = 2.0,
                  threshold: float = 0.5, k: float = 1.0, keepdims: bool = False) -> tuple[Any, Any]:
    """Per-sample loss ``ℓ = −Σ_c a_c L_c`` (summed over ``axis``, kept at size 1 with ``keepdims``) and
    its gradient in ``x``.

    ``q`` holds the per-class target weights (one-hot or probabilities, times α and class weights).
    """
    x = x - ops.max(x, axis)  # shift-invariant in exact arithmetic; shifted here so every path rounds alike
    log_p = ops.log_softmax(x, axis)
    p = ops.exp(log_p)
    v = p
    phi_l = None  # φ_c · L_c
    if family == "ce":
        w = None
    elif family == "focal":
        log1m = log_one_minus_softmax(ops, x, log_p, axis)
        w = ops.exp(gamma * log1m) if not is_zero(gamma) else None
        if order >= 1 and not is_zero(gamma):
            one_minus = ops.exp(log1m)
            ratio = ops.where(one_minus > 1e-4, -log_p / ops.maximum(one_minus, 1e-30), 1.0 + 0.5 * one_minus)
            phi_l = gamma * p * w * ratio
    elif family == "hard":
        w = heaviside(ops, threshold - p)
    elif family == "soft":
        v = ops.softmax(-k * x, axis)
        w = v
        phi_l = -k * v * log_p
    elif family == "complement":
        log_r = ops.log_softmax(k * x, axis)
        v = ops.exp(log_r)
        w = ops.exp(log_one_minus_softmax(ops, k * x, log_r, axis))
        phi_l = -k * v * log_p
    else:
        raise ValueError(f"softmax_terms: unknown family {family!r}")
    a = q if w is None else q * w
    loss = -ops.sum(a * log_p, axis, keepdims=keepdims)
    if order == 0:
        return loss, None
    grad = p * ops.sum(a, axis, keepdims=True) - a
    if phi_l is not None:
        b = q * phi_l
        grad = grad + v * ops.sum(b, axis, keepdims=True) - b
    return loss, grad


def _log_one_minus_target(ops: Any, e: Any, log_s: Any, is_t: Any, axis: int) -> Any:
    """``log(1 − p_t)`` from ``e = exp(x − max)``: the others' sum taken directly, never as ``S − e_t``."""
    return ops.log(ops.sum(ops.where(is_t, 0.0, e), axis, keepdims=True)) - log_s


def softmax_terms_sparse(ops: Any, family: str, x: Any, index: Any, target_weight: Any, *, axis: int = 1,
                         order: int = 1, gamma: float = 2.0, threshold: float = 0.5,
                         k: float = 1.0) -> tuple[Any, Any]:
    """:func:`softmax_terms` for class ids: only the target's weight ``w_t`` is formed.

    ``index`` holds the class ids with the class axis kept (size 1); ``target_weight`` is
    ``q_t`` (α_t times the class weight, or 1). Then ``ℓ = −q_t w_t L_t`` and
    ``∂ℓ/∂x = a_t (p − e_t) + b_t (v − e_t)`` with ``a_t = q_t w_t``, ``b_t = q_t φ_t L_t``.
    Returns the loss with the class axis kept (size 1) and the gradient.
    """
    z = x - ops.max(x, axis)
    e = ops.exp(z)
    total_e = ops.sum(e, axis, keepdims=True)
    log_s = ops.log(total_e)
    log_pt = ops.take(z, index, axis) - log_s
    b = v = None  # v None: the derivative of w_t runs along p itself
    if family == "ce":
        a = target_weight
    elif family == "focal":
        e_t = ops.exp(log_pt) * total_e
        log1m = ops.log(ops.maximum(total_e - e_t, 0.0)) - log_s
        w = ops.exp(gamma * log1m) if not is_zero(gamma) else 1.0
        a = target_weight * w
        if order >= 1 and not is_zero(gamma):
            one_minus = ops.exp(log1m)
            ratio = ops.where(one_minus > 1e-4, -log_pt / ops.maximum(one_minus, 1e-30), 1.0 + 0.5 * one_minus)
            b = target_weight * gamma * ops.exp(log_pt) * w * ratio
    elif family == "hard":
        a = target_weight * heaviside(ops, threshold - ops.exp(log_pt))
    elif family in {"soft", "complement"}:
        kz = (-k if family == "soft" else k) * z
        ek = ops.exp(kz - ops.max(kz, axis))
        sk = ops.sum(ek, axis, keepdims=True)
        v = ek / sk
        v_t = ops.take(v, index, axis)
        w = v_t if family == "soft" else ops.exp(
            _log_one_minus_target(ops, ek, ops.log(sk), ops.index_mask(x, index, axis), axis))
        a = target_weight * w
        b = target_weight * (-k) * v_t * log_pt
    else:
        raise ValueError(f"softmax_terms_sparse: unknown family {family!r}")
    loss = -a * log_pt
    if order == 0:
        return loss, None
    p = e / total_e
    if b is None:
        grad, total = a * p, a
    elif v is None:
        grad, total = (a + b) * p, a + b
    else:
        grad, total = a * p + b * v, a + b
    return loss, ops.add_at(grad, index, -total, axis)


def softmax_sparse_with_hessian(ops: Any, family: str, x: Any, index: Any, target_weight: Any, *, axis: int = -1,
                                gamma: float = 2.0, threshold: float = 0.5) -> tuple[Any, Any, Any]:
    r"""Loss, gradient and diagonal Hessian of a class-id softmax loss that depends on ``p_t`` alone.

    With ``ℓ = q_t f(p_t)`` and ``∂p_t/∂x_j = p_t (δ_{tj} − p_j)``:
    ``∂ℓ/∂x_j = q_t f'(p_t) p_t (δ_{tj} − p_j)`` and
    ``∂²ℓ/∂x_j² = q_t [f''(p_t) p_t² (δ_{tj} − p_j)² + f'(p_t) p_t ((δ_{tj} − p_j)² − p_j (1 − p_j))]``.
    Cross-entropy: ``f = −log u``; focal: ``f = −(1−u)^γ log u``; hard truncation: ``f = −θ(m − u) log u``
    with ``θ`` held constant. For cross-entropy the diagonal is the familiar ``p_j (1 − p_j)``.
    Used in float64 by the gradient-boosting objectives.
    """
    z = x - ops.max(x, axis)
    e = ops.exp(z)
    log_s = ops.log(ops.sum(e, axis, keepdims=True))
    log_u = ops.take(z, index, axis) - log_s
    u = ops.exp(log_u)
    p = e / ops.exp(log_s)
    if family == "ce" or family == "hard":
        lam = 1.0 if family == "ce" else heaviside(ops, threshold - u)
        f, f1, f2 = -lam * log_u, -lam / u, lam / (u * u)
    elif family == "focal":
        one_minus = ops.exp(_log_one_minus_target(ops, e, log_s, ops.index_mask(x, index, axis), axis))
        w = _power(ops, one_minus, gamma, 1e-300)
        w1 = _power(ops, one_minus, gamma - 1.0, 1e-300)
        w2 = _power(ops, one_minus, gamma - 2.0, 1e-300)
        f = -w * log_u
        f1 = gamma * w1 * log_u - w / u
        f2 = -gamma * (gamma - 1.0) * w2 * log_u + 2.0 * gamma * w1 / u + w / (u * u)
    else:
        raise ValueError(f"softmax_sparse_with_hessian: no Hessian for family {family!r}")
    delta = ops.add_at(-p, index, 1.0, axis)  # δ_tj − p_j
    grad = target_weight * f1 * u * delta
    hess = target_weight * (f2 * u * u * delta * delta + f1 * u * (delta * delta - p * (1.0 - p)))
    return target_weight * f, grad, hess
