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
- poly-1 focal: focal plus ``ε q^{γ+1}`` (no ``α`` on it, as the paper's code); its slope is ``ε(γ+1) q^γ q'``.
- asymmetric (ASL): ``ℓ = y s̄^{γ₊} n₊ + (1−y) m^{γ₋} L`` with the shifted probability ``m = max(s − c, 0)``,
  ``u = 1 − m`` and ``L = −log u = −log1p(−m)`` (``n₋`` itself when ``c = 0``).
  ``ℓ' = −y s̄^{γ₊}(γ₊ s n₊ + s̄) + (1−y) θ(m) s s̄ m^{γ₋} (γ₋ r + 1/u)`` with ``r = L/m ∈ [1, ∞)``
  (``1 + m/2`` for small ``m``), which keeps ``γ₋ m^{γ₋−1} L`` finite for ``γ₋ < 1``; for ``c = 0`` the second
  part is ``(1−y) s^{γ₋}(γ₋ s̄ n₋ + s)``, the first one mirrored.
- varifocal (VFL): a quality target ``q ∈ [0, 1]``; a positive (``q > 0``) weighs its cross-entropy by ``q``
  (by 1 without ``iou_weighted``), a negative (``q = 0``) by ``α s^γ``: ``ℓ = q B`` or ``α s^γ n₋``;
  ``ℓ' = q ((1−q) s − q s̄)`` or ``α s^γ (γ s̄ n₋ + s)`` (ASL's negative term with ``c = 0``).
- quality focal (QFL): ``ℓ = B |d|^β`` with ``d = s − q = (1−q) s − q s̄`` (``β`` is passed as ``gamma``);
  ``ℓ' = d |d|^β + β B s s̄ sign(d) |d|^{β−1}``, finite at ``d = 0`` for ``β = 0`` or ``β ≥ 1`` (the checks
  refuse ``0 < β < 1``).

Softmax family
--------------
Per class ``c``: ``L_c = log p_c``, a weight ``w_c`` (1 for CE, ``(1−p_c)^γ`` for focal, ``θ(m − p_c)`` for
hard truncation, ``softmax(−Kx)_c`` or ``1 − softmax(Kx)_c`` for the softened forms) whose
derivative has the form ``∂w_c/∂x_j = φ_c (δ_{cj} − v_j)`` for a probability vector ``v``
(``v = p``, ``softmax(−Kx)`` or ``softmax(Kx)``). With per-class target weights ``q_c`` (one-hot or
probabilities, times ``α_c`` and class weights):

``ℓ = −Σ_c a_c L_c`` with ``a_c = q_c w_c``, and ``∂ℓ/∂x = (p Σa − a) + (v Σb − b)`` with ``b_c = q_c φ_c L_c``.

For focal, ``φ_c L_c = γ p_c (1 − p_c)^γ · r_c`` with ``r_c = −log p_c / (1 − p_c) ∈ [1, ∞)``, bounded
where it matters. Poly-1 adds ``ε Σ_c q_c (1 − p_c)`` (``ε (1 − p_t)`` for a one-hot ``q``), whose gradient is
``p Σb − b`` with ``b_c = ε q_c p_c``; ``1 − p_c`` is taken from the same sums as ``log(1 − p_c)``.

``log S`` (``e = exp(x − max)``, ``S = Σe``) is taken as ``log1p`` of a sum that leaves one class out
and never adds it: the row's leader (probability targets: its ``e`` is exactly 1) or the target
(class ids: ``log S = log1p(R + (e_t − 1))``, ``R = Σ_{c≠t} e_c``). So ``log p_t = −log1p(Σ_{c≠t} e^{x_c − x_t})``
keeps its relative precision when the true class leads by a wide margin, where ``log(1 + ε)`` rounds to 0
(float32 from a margin of about 16, float64 from 37), and ``log(1 − p_t) = log R − log S`` comes from the
same sum (exact). The other classes' ``log(1 − p_c) = log1p(−p_c)``, where ``p_c ≤ ½``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SIGMOID_FAMILIES",
    "SOFTMAX_FAMILIES",
    "ghmc_beta",
    "ghmc_bin_index",
    "ghmr_terms",
    "is_one",
    "is_zero",
    "sigmoid_terms",
    "softmax_sparse_with_hessian",
    "softmax_terms",
    "softmax_terms_sparse",
]

SIGMOID_FAMILIES = ("bce", "focal", "hard", "soft", "ghmc", "asl", "polyfocal", "varifocal", "qfl")
SOFTMAX_FAMILIES = ("ce", "focal", "hard", "soft", "complement", "poly")


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


def adaptive_gamma(ops: Any, hard: Any, gamma: Any, gamma_hard: Any, like: Any) -> Any:
    """The focusing parameter of an adaptive focal loss, per element: ``gamma_hard`` where ``hard`` (``p_t <
    hard_threshold``), else ``gamma`` (Mukhoti et al. 2020's FLSD-53 is ``γ = 5`` below 0.2, ``3`` above). It
    is piecewise constant in ``p_t``: each piece's derivative is taken with its own γ, as the authors' code
    (which reads γ off ``p_t`` without gradient). ``like`` gives the values' dtype and shape."""
    one = ops.ones_like(like)
    return ops.where(hard, one * gamma_hard, one * gamma)


def _focal_factor(ops: Any, log1m: Any, hard: Any, gamma: Any, gamma_hard: Any, like: Any) -> tuple[Any, Any]:
    """``(γ, (1 − p)^γ)`` from ``log(1 − p)``, with :func:`adaptive_gamma` when ``gamma_hard`` is given. A γ of
    0 gives a factor of exactly 1, also where ``log(1 − p) = −∞`` (``0 · −∞`` would be NaN)."""
    def factor(g: Any) -> Any:
        return 1.0 if is_zero(g) else ops.exp(g * log1m)

    if gamma_hard is None:
        return gamma, ops.exp(gamma * log1m)
    return adaptive_gamma(ops, hard, gamma, gamma_hard, like), ops.where(hard, factor(gamma_hard), factor(gamma))


def ghmc_bin_index(ops: Any, x: Any, y: Any, bins: int) -> Any:
    """GHM-C's bin of ``g = |σ(x) − y|``: ``floor(g · bins)``, the top edge (``g = 1``) in the last bin."""
    return ops.to_bin(ops.abs(ops.sigmoid(x) - y) * bins, bins)


def ghmc_beta(ops: Any, density: Any, n_valid: Any, divisor: Any) -> Any:
    """GHM-C's weight per bin, ``β_b = N / (density_b · divisor)``, 0 for an empty bin.

    ``divisor`` is the number of non-empty bins (the authors' code) or of all bins (the paper).
    """
    filled = density > 0
    return ops.where(filled, n_valid / ops.where(filled, density, 1.0) / divisor, 0.0)


def ghmr_terms(ops: Any, d: Any, mu: float) -> tuple[Any, Any]:
    """GHM-R's ``ASL1 = √(d² + μ²) − μ`` and its gradient norm ``g = |d| / √(d² + μ²) ∈ [0, 1]``.

    ASL1 is taken as ``|d| · (|d| / (h + μ))`` with ``h = hypot(d, μ)``: ``(h − μ)(h + μ) = d²`` without the
    cancellation of ``h − μ`` for ``|d| ≪ μ``, and without forming ``d²`` (float32 overflows beyond 1.8e19).
    """
    a = ops.abs(d)
    h = ops.hypot(d, mu)
    return a * (a / (h + mu)), a / h


def tversky_terms(tp: Any, fp: Any, fn: Any, *, alpha: float, beta: float, smooth_nr: float,
                  smooth_dr: float) -> Any:
    """The Tversky loss of region sums, ``1 − (tp + s_n) / (tp + α·fp + β·fn + s_d)``, written as
    ``(α·fp + β·fn + s_d − s_n) / (tp + α·fp + β·fn + s_d)``: no ``1 − ratio`` cancellation when the
    overlap is nearly perfect, and no ``Σp − tp`` either (``fp = Σp(1−y)`` and ``fn = Σ(1−p)y`` are summed
    as such). Dice is ``α = β = ½`` with both smoothing terms halved: ``(fp + fn + s_d − s_n) / (2tp + fp +
    fn + s_d)``, the same bits; Jaccard (IoU) is ``α = β = 1``. ``s_d > 0`` makes an empty class score 0."""
    off = alpha * fp + beta * fn
    return (off + (smooth_dr - smooth_nr)) / (tp + off + smooth_dr)


def heaviside(ops: Any, z: Any) -> Any:
    """θ(z) with θ(0) = ½ (seed 000): ``(sign(z) + 1) / 2``."""
    return (ops.sign(z) + 1.0) * 0.5


def sigmoid_terms(ops: Any, family: str, x: Any, y: Any, *, order: int = 1, pos_weight: Any = None,
                  alpha: float | None = None, gamma: float = 2.0, threshold: float = 0.5, k: float = 1.0,
                  beta: Any = None, tiny: float = 1e-30, gamma_neg: float = 4.0, clip: float = 0.0,
                  epsilon: float = 0.0, iou_weighted: bool = True, gamma_hard: Any = None,
                  hard_threshold: Any = 0.2) -> tuple[Any, Any, Any]:
    """Per-element loss, and its first (``order ≥ 1``) and second (``order ≥ 2``) derivative in ``x``.

    ``y`` is the (already smoothed) target in [0, 1]; unused derivatives are returned as ``None``. ``gamma`` is
    ASL's ``γ₊``, ``gamma_neg`` its ``γ₋`` and ``clip`` its shift ``c``; ``epsilon`` is poly-1's ``ε``; for QFL
    ``gamma`` is ``β``; ``iou_weighted`` is VFL's weighting of the positives by their target; ``gamma_hard``
    (focal, poly-1 focal) the γ where ``p_t < hard_threshold`` (:func:`adaptive_gamma`).
    """
    if family == "asl":
        return _asl_terms(ops, x, y, order=order, gamma_pos=gamma, gamma_neg=gamma_neg, clip=clip, tiny=tiny)
    if family == "varifocal":
        return _varifocal_terms(ops, x, y, order=order, alpha=0.75 if alpha is None else alpha, gamma=gamma,
                                iou_weighted=iou_weighted, tiny=tiny)
    if family == "qfl":
        return _qfl_terms(ops, x, y, order=order, beta=gamma, tiny=tiny)
    s = ops.sigmoid(x)
    n_neg = ops.softplus(x)  # −log σ(−x)
    n_pos = ops.softplus(-x)  # −log σ(x), never softplus(x) − x: that cancels for large x
    ybar = 1.0 - y
    plain = (family == "bce" and pos_weight is None) or family == "ghmc"
    # σ(−x) itself, never 1 − σ(x): exact where σ(x) rounds to 1 (not formed where nothing needs it)
    sbar = ops.sigmoid(-x) if not plain or order >= 2 else None
    if plain or family in ("focal", "polyfocal"):
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
    if family in ("focal", "polyfocal"):
        q = ops.fma(ybar * s, y, sbar)  # 1 − p_t = y σ(−x) + (1−y) σ(x): no cancellation when p_t is near 1
        a = 1.0 if alpha is None else (1.0 - alpha) + y * (2.0 * alpha - 1.0)
        poly = family == "polyfocal" and not is_zero(epsilon)
        shared = (q, a, bce, dbce, d2bce, 1.0 - 2.0 * y, s, sbar)
        if gamma_hard is None:
            return _focal_piece(ops, shared, gamma, epsilon if poly else None, order, tiny)
        # adaptive γ: each piece with its own scalar γ (its own guards for γ = 0), then chosen per element
        hard = q > 1.0 - hard_threshold  # p_t < threshold, read off q = 1 − p_t
        easy_terms = _focal_piece(ops, shared, gamma, epsilon if poly else None, order, tiny)
        hard_terms = _focal_piece(ops, shared, gamma_hard, epsilon if poly else None, order, tiny)
        return tuple(None if e is None else ops.where(hard, h, e)  # type: ignore[return-value]
                     for e, h in zip(easy_terms, hard_terms, strict=True))
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


def _focal_piece(ops: Any, shared: tuple, gamma: Any, epsilon: Any, order: int, tiny: float) -> tuple[Any, Any, Any]:
    """Focal loss ``a q^γ B`` (poly-1 focal: ``+ ε q^{γ+1}``) and its derivatives for one scalar ``γ``, from the
    shared ``(q, a, B, B', B'', t, s, s̄)`` with ``q = 1 − p_t`` and ``q' = t s s̄``."""
    q, a, bce, dbce, d2bce, t, s, sbar = shared
    m = _power(ops, q, gamma, tiny)
    abce = a * bce
    loss = m * abce
    if epsilon is not None:
        loss = loss + epsilon * (m * q)  # ε q^{γ+1}
    if order == 0:
        return loss, None, None
    dq = t * s * sbar
    if is_zero(gamma):
        grad = a * dbce
    else:
        m1 = _power(ops, q, gamma - 1.0, tiny)  # q^{γ−1}
        grad = (gamma * m1 * dq) * abce + (a * m) * dbce
    if epsilon is not None:
        grad = grad + (epsilon * (gamma + 1.0)) * m * dq
    if order == 1:
        return loss, grad, None
    # ℓ'' = a [M'' B + 2 M' B' + M B''], M' = γ q^{γ−1} q', M'' = γ(γ−1) q^{γ−2} q'² + γ q^{γ−1} q''. With
    # r = q'/q (|r| ≤ 1: s s̄ ≤ min(s, s̄) ≤ q) these are M' = γ M r and M'' = γ M r (r(γ−1) + s̄ − s): no
    # q^{γ−2} to overflow where q underflows (a margin of 800 in float64 gave NaN for γ < 2)
    d2q = dq * (sbar - s)
    if is_zero(gamma):
        dm = d2m = 0.0 * q
    else:
        r = dq / ops.maximum(q, tiny)
        dm = gamma * m * r
        d2m = dm * (r * (gamma - 1.0) + (sbar - s))
    hess = a * (d2m * bce + 2.0 * dm * dbce + m * d2bce)
    if epsilon is not None:  # ε(γ+1)(γ q^{γ−1} q'² + q^γ q'')
        hess = hess + (epsilon * (gamma + 1.0)) * (dm * dq + m * d2q)
    return loss, grad, hess


def _asl_terms(ops: Any, x: Any, y: Any, *, order: int, gamma_pos: float, gamma_neg: float, clip: float,
               tiny: float) -> tuple[Any, Any, Any]:
    """The asymmetric loss (Ridnik et al. 2021) and its derivatives; see the module docstring."""
    s = ops.sigmoid(x)
    sbar = ops.sigmoid(-x)
    n_pos = ops.softplus(-x)
    ybar = 1.0 - y
    wp = _power(ops, sbar, gamma_pos, tiny)  # (1 − p)^{γ₊}
    if is_zero(clip):
        m = s
        big_l = ops.softplus(x)  # −log(1 − p), exact for large x
    else:
        m = ops.maximum(s - clip, 0.0)
        big_l = -ops.log1p(-m)
    wn = _power(ops, m, gamma_neg, tiny)  # m^{γ₋}
    loss = y * wp * n_pos + ybar * wn * big_l
    if order == 0:
        return loss, None, None
    g_pos = gamma_pos * s * n_pos + sbar  # −dP / (y s̄^{γ₊})
    if is_zero(clip):
        g_neg = gamma_neg * sbar * big_l + s  # dN / ((1−y) s^{γ₋})
        grad = ybar * wn * g_neg - y * wp * g_pos
    else:
        u = 1.0 - m  # ≥ c > 0
        r = ops.where(m > 1e-4, big_l / ops.maximum(m, tiny), 1.0 + 0.5 * m)  # L / m
        d = s * sbar
        h = gamma_neg * r + 1.0 / u
        grad = ops.where(m > 0.0, ybar * d * wn * h, 0.0) - y * wp * g_pos
    if order == 1:
        return loss, grad, None
    # P'' = y s s̄^{γ₊} [γ₊ G − s̄ (γ₊ n₊ − γ₊ − 1)] with G = g_pos
    hess = y * s * wp * (gamma_pos * g_pos - sbar * (gamma_pos * n_pos - gamma_pos - 1.0))
    if is_zero(clip):  # the mirror image: s ↔ s̄, n₊ ↔ n₋
        hess = hess + ybar * sbar * wn * (gamma_neg * g_neg - s * (gamma_neg * big_l - gamma_neg - 1.0))
    else:  # N'' = (1−y) D [(s̄ − s) H + D H'], H = m^{γ₋}(γ₋ r + 1/u)
        wn1 = _power(ops, m, gamma_neg - 1.0, tiny)
        wn2 = _power(ops, m, gamma_neg - 2.0, tiny)
        dh = gamma_neg * (gamma_neg - 1.0) * wn2 * big_l + 2.0 * gamma_neg * wn1 / u + wn / (u * u)
        hess = hess + ops.where(m > 0.0, ybar * d * ((sbar - s) * wn * h + d * dh), 0.0)
    return loss, grad, hess


def _varifocal_terms(ops: Any, x: Any, y: Any, *, order: int, alpha: float, gamma: float, iou_weighted: bool,
                     tiny: float) -> tuple[Any, Any, Any]:
    """Varifocal loss (Zhang et al. 2021) and its derivatives; see the module docstring."""
    s = ops.sigmoid(x)
    sbar = ops.sigmoid(-x)
    n_neg = ops.softplus(x)
    n_pos = ops.softplus(-x)
    ybar = 1.0 - y
    positive = y > 0.0
    wp = y if iou_weighted else 1.0
    sg = _power(ops, s, gamma, tiny)  # s^γ
    bce = ops.fma(ybar * n_neg, y, n_pos)
    loss = ops.where(positive, wp * bce, (alpha * sg) * n_neg)
    if order == 0:
        return loss, None, None
    g_neg = gamma * sbar * n_neg + s
    grad = ops.where(positive, wp * (ybar * s - y * sbar), (alpha * sg) * g_neg)
    if order == 1:
        return loss, grad, None
    d = s * sbar
    hess = ops.where(positive, wp * d, (alpha * sg) * sbar * (gamma * g_neg - s * (gamma * n_neg - gamma - 1.0)))
    return loss, grad, hess


def _qfl_terms(ops: Any, x: Any, y: Any, *, order: int, beta: float, tiny: float) -> tuple[Any, Any, Any]:
    """Quality focal loss (Li et al. 2020, GFL) and its derivatives; see the module docstring."""
    s = ops.sigmoid(x)
    sbar = ops.sigmoid(-x)
    ybar = 1.0 - y
    bce = ops.fma(ybar * ops.softplus(x), y, ops.softplus(-x))
    dev = ybar * s - y * sbar  # s − q, no cancellation where s rounds to 1
    ad = ops.abs(dev)
    m = _power(ops, ad, beta, tiny)  # |d|^β
    loss = bce * m
    if order == 0:
        return loss, None, None
    d = s * sbar
    grad = dev * m
    if not is_zero(beta):
        sm1 = ops.sign(dev) * _power(ops, ad, beta - 1.0, tiny)  # sign(d) |d|^{β−1}
        grad = grad + (beta * bce) * d * sm1
    if order == 1:
        return loss, grad, None
    # ℓ'' = (1 + 2β) s s̄ |d|^β + β B s s̄ [sign(d) |d|^{β−1} (s̄ − s) + (β − 1) s s̄ |d|^{β−2}]
    hess = (1.0 + 2.0 * beta) * d * m
    if not is_zero(beta):
        inner = sm1 * (sbar - s)
        if not is_one(beta):
            inner = inner + (beta - 1.0) * d * _power(ops, ad, beta - 2.0, tiny)
        hess = hess + (beta * bce) * d * inner
    return loss, grad, hess


def leader_rest(ops: Any, e: Any, axis: int) -> tuple[Any, Any]:
    """``(R, S)`` for ``e = exp(z)``, ``z`` shifted to a row maximum of 0 (the leader's ``e`` is exactly 1):
    ``S = Σe`` and ``R = S − 1 = Σ_{c≠top} e_c`` summed without the leader's 1, so that a small ``R`` keeps
    its digits (``S − 1`` is off by up to an ulp of 1). ``R`` is ``Σ frac(e)``: ``e`` itself but 0 at the
    leaders, exact where one class leads; where several tie (``S − Σ frac(e)`` is 2 or more) it is ``S − 1``,
    then ``≥ 1`` and precise. No argmax, no mask."""
    total = ops.sum(e, axis, keepdims=True)
    small = ops.sum(ops.frac(e), axis, keepdims=True)
    return ops.where(total - small > 1.5, total - 1.0, small), total


def log_softmax_parts(ops: Any, z: Any, axis: int) -> tuple[Any, Any, Any]:
    """For ``z`` shifted to a row maximum of 0: ``(log_p, p, R)`` with ``R`` from :func:`leader_rest` and
    ``log_p = z − log1p(R)``: the leader's ``log p`` keeps its relative precision however wide its margin."""
    e = ops.exp(z)
    rest, _ = leader_rest(ops, e, axis)
    return z - ops.log1p(rest), e / (1.0 + rest), rest


def log_one_minus_softmax(ops: Any, z: Any, log_p: Any, rest: Any) -> Any:
    """``log(1 − softmax(z)_c)`` for every class from :func:`log_softmax_parts`: ``log R − log S`` for the
    leaders (``z_c = 0``, exact), ``log1p(−p_c)`` for the rest, where ``p_c ≤ ½``."""
    is_top = z == 0.0
    lead = ops.log(rest) + (log_p - z)  # log R − log S
    safe = ops.where(is_top, -1.0, log_p)
    return ops.where(is_top, lead, ops.log1p(-ops.exp(safe)))


def softmax_terms(ops: Any, family: str, x: Any, q: Any, *, axis: int = 1, order: int = 1, gamma: float = 2.0,
                  threshold: float = 0.5, k: float = 1.0, keepdims: bool = False,
                  epsilon: float = 1.0, gamma_hard: Any = None, hard_threshold: Any = 0.2) -> tuple[Any, Any]:
    """Per-sample loss ``ℓ = −Σ_c a_c L_c`` (summed over ``axis``, kept at size 1 with ``keepdims``) and
    its gradient in ``x``.

    ``q`` holds the per-class target weights (one-hot or probabilities, times α and class weights);
    ``gamma_hard``: focal's γ for each class term where ``p_c < hard_threshold`` (:func:`adaptive_gamma`).
    """
    x = x - ops.max(x, axis)  # shift-invariant in exact arithmetic; shifted here so every path rounds alike
    log_p, p, rest = log_softmax_parts(ops, x, axis)
    v = p
    phi_l = None  # φ_c · L_c
    extra = None  # an added term Σ_c q_c e_c (poly-1), with its gradient's b_c
    if family == "ce":
        w = None
    elif family == "poly":
        w = None
        extra = (epsilon * ops.exp(log_one_minus_softmax(ops, x, log_p, rest)), epsilon * p)
    elif family == "focal":
        log1m = log_one_minus_softmax(ops, x, log_p, rest)
        focused = gamma_hard is not None or not is_zero(gamma)
        g, w = _focal_factor(ops, log1m, p < hard_threshold, gamma, gamma_hard, p) if focused else (gamma, None)
        if order >= 1 and focused:
            one_minus = ops.exp(log1m)
            ratio = ops.where(one_minus > 1e-4, -log_p / ops.maximum(one_minus, 1e-30), 1.0 + 0.5 * one_minus)
            phi_l = g * p * w * ratio
    elif family == "hard":
        w = heaviside(ops, threshold - p)
    elif family == "soft":
        v = ops.softmax(-k * x, axis)
        w = v
        phi_l = -k * v * log_p
    elif family == "complement":
        kx = k * x  # k ≥ 0: still a row maximum of 0, at the same class
        log_r, v, rest_k = log_softmax_parts(ops, kx, axis)
        w = ops.exp(log_one_minus_softmax(ops, kx, log_r, rest_k))
        phi_l = -k * v * log_p
    else:
        raise ValueError(f"softmax_terms: unknown family {family!r}")
    a = q if w is None else q * w
    loss = -ops.sum(a * log_p, axis, keepdims=keepdims)
    if extra is not None:
        loss = loss + ops.sum(q * extra[0], axis, keepdims=keepdims)
    if order == 0:
        return loss, None
    grad = p * ops.sum(a, axis, keepdims=True) - a
    if phi_l is not None:
        b = q * phi_l
        grad = grad + v * ops.sum(b, axis, keepdims=True) - b
    if extra is not None:  # ∂(1 − p_c)/∂x_j = p_c (p_j − δ_cj)
        b = q * extra[1]
        grad = grad + p * ops.sum(b, axis, keepdims=True) - b
    return loss, grad


def _rest_of_target(ops: Any, e: Any, index: Any, rest: Any, total: Any, axis: int) -> Any:
    """``R_t = Σ_{c≠t} e_c`` for the class ids ``index``, with ``(R, S)`` from :func:`leader_rest`: ``R`` where
    the target leads (exact), ``S − e_t`` where it does not (then ``≥ 1`` and precise)."""
    e_t = ops.take(e, index, axis)
    return ops.where(e_t == 1.0, rest, total - e_t)


def softmax_terms_sparse(ops: Any, family: str, x: Any, index: Any, target_weight: Any, *, axis: int = 1,
                         order: int = 1, gamma: float = 2.0, threshold: float = 0.5,
                         k: float = 1.0, epsilon: float = 1.0, gamma_hard: Any = None,
                         hard_threshold: Any = 0.2) -> tuple[Any, Any]:
    """:func:`softmax_terms` for class ids: only the target's weight ``w_t`` is formed.

    ``index`` holds the class ids with the class axis kept (size 1); ``target_weight`` is
    ``q_t`` (α_t times the class weight, or 1). Then ``ℓ = −q_t w_t L_t`` and
    ``∂ℓ/∂x = a_t (p − e_t) + b_t (v − e_t)`` with ``a_t = q_t w_t``, ``b_t = q_t φ_t L_t``.
    Returns the loss with the class axis kept (size 1) and the gradient.
    """
    z = x - ops.max(x, axis)
    e = ops.exp(z)
    rest, total_e = leader_rest(ops, e, axis)
    log_s = ops.log1p(rest)
    log_pt = ops.take(z, index, axis) - log_s
    b = v = None  # v None: the derivative of w_t runs along p itself
    extra = None
    if family == "ce":
        a = target_weight
    elif family == "poly":  # + ε q_t (1 − p_t), 1 − p_t = R_t / S
        a = target_weight
        extra = target_weight * epsilon * (_rest_of_target(ops, e, index, rest, total_e, axis) / total_e)
        b = target_weight * epsilon * ops.exp(log_pt)
    elif family == "focal":
        log1m = ops.log(_rest_of_target(ops, e, index, rest, total_e, axis)) - log_s
        focused = gamma_hard is not None or not is_zero(gamma)
        g, w = (_focal_factor(ops, log1m, ops.exp(log_pt) < hard_threshold, gamma, gamma_hard, log_pt) if focused
                else (gamma, 1.0))
        a = target_weight * w
        if order >= 1 and focused:
            one_minus = ops.exp(log1m)
            ratio = ops.where(one_minus > 1e-4, -log_pt / ops.maximum(one_minus, 1e-30), 1.0 + 0.5 * one_minus)
            b = target_weight * g * ops.exp(log_pt) * w * ratio
    elif family == "hard":
        a = target_weight * heaviside(ops, threshold - ops.exp(log_pt))
    elif family in {"soft", "complement"}:
        kz = (-k if family == "soft" else k) * z
        ek = ops.exp(kz - ops.max(kz, axis))
        sk = ops.sum(ek, axis, keepdims=True)
        v = ek / sk
        v_t = ops.take(v, index, axis)
        if family == "soft":
            w = v_t
        else:  # 1 − v_t, the others' share taken directly (kz has its row maximum 0 at the same class)
            rest_k, total_k = leader_rest(ops, ek, axis)
            w = _rest_of_target(ops, ek, index, rest_k, total_k, axis) / total_k
        a = target_weight * w
        b = target_weight * (-k) * v_t * log_pt
    else:
        raise ValueError(f"softmax_terms_sparse: unknown family {family!r}")
    loss = -a * log_pt
    if extra is not None:
        loss = loss + extra
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
                                gamma: float = 2.0, threshold: float = 0.5,
                                epsilon: float = 1.0, gamma_hard: Any = None,
                                hard_threshold: Any = 0.2) -> tuple[Any, Any, Any]:
    r"""Loss, gradient and diagonal Hessian of a class-id softmax loss that depends on ``p_t`` alone.

    With ``ℓ = q_t f(p_t)`` and ``∂p_t/∂x_j = p_t (δ_{tj} − p_j)``:
    ``∂ℓ/∂x_j = q_t f'(p_t) p_t (δ_{tj} − p_j)`` and
    ``∂²ℓ/∂x_j² = q_t [f''(p_t) p_t² (δ_{tj} − p_j)² + f'(p_t) p_t ((δ_{tj} − p_j)² − p_j (1 − p_j))]``.
    Cross-entropy: ``f = −log u``; poly-1: ``f = −log u + ε(1 − u)``; focal: ``f = −(1−u)^γ log u``;
    hard truncation: ``f = −θ(m − u) log u``
    with ``θ`` held constant. For cross-entropy the diagonal is the familiar ``p_j (1 − p_j)``.
    Used in float64 by the gradient-boosting objectives.
    """
    z = x - ops.max(x, axis)
    e = ops.exp(z)
    rest, total_e = leader_rest(ops, e, axis)
    log_s = ops.log1p(rest)
    log_u = ops.take(z, index, axis) - log_s
    u = ops.exp(log_u)
    p = e / total_e
    scale = None  # f'' comes scaled by scale² where it would overflow (focal)
    if family == "ce" or family == "hard":
        lam = 1.0 if family == "ce" else heaviside(ops, threshold - u)
        f, f1, f2 = -lam * log_u, -lam / u, lam / (u * u)
    elif family == "poly":  # f = −log u + ε (1 − u)
        one_minus = _rest_of_target(ops, e, index, rest, total_e, axis) / total_e
        f, f1, f2 = -log_u + epsilon * one_minus, -1.0 / u - epsilon, 1.0 / (u * u)
    elif family == "focal":
        one_minus = _rest_of_target(ops, e, index, rest, total_e, axis) / total_e

        # f'' holds (1 − u)^{γ−2}, which overflows where 1 − u underflows (a margin of 800 in float64) though
        # f'' δ_j² does not: every |δ_j| ≤ 1 − u. So F = f''·(1 − u)² is formed instead, and δ_j / (1 − u)
        def piece(g: Any) -> tuple[Any, Any, Any]:  # f, f', F for one scalar γ (γ = 0: cross-entropy's)
            if is_zero(g):
                return -log_u, -1.0 / u, (one_minus * one_minus) / (u * u)
            w, w1 = _power(ops, one_minus, g, 1e-300), _power(ops, one_minus, g - 1.0, 1e-300)
            return (-w * log_u, g * w1 * log_u - w / u,
                    w * (-g * (g - 1.0) * log_u + 2.0 * g * one_minus / u + (one_minus * one_minus) / (u * u)))

        f, f1, f2 = piece(gamma)
        if gamma_hard is not None:
            hard = u < hard_threshold
            f, f1, f2 = (ops.where(hard, h, e) for e, h in zip((f, f1, f2), piece(gamma_hard), strict=True))
        scale = ops.maximum(one_minus, 1e-300)
    else:
        raise ValueError(f"softmax_sparse_with_hessian: no Hessian for family {family!r}")
    delta = ops.add_at(-p, index, 1.0, axis)  # δ_tj − p_j
    grad = target_weight * f1 * u * delta
    d = delta if scale is None else delta / scale
    hess = target_weight * (f2 * u * u * d * d + f1 * u * (delta * delta - p * (1.0 - p)))
    return target_weight * f, grad, hess
