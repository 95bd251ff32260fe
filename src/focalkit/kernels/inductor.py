"""The CPU formula through Inductor (``torch.compile``), opt-in: ``FOCALKIT_INDUCTOR=auto``.

The chunked kernels of :mod:`.fused` run a couple of dozen torch ops per slice, each dispatched from
Python; Inductor compiles the same autograd Function (under compile it is traced whole: one loop for
the loss and its closed-form gradient) to C++. Measured on an Intel Xeon (2 cores, torch 2.13, inside
a training step, ``focalkit bench --in-step``): sigmoid focal ``[100000, 80]`` 5.7× the textbook
formula against 1.3× for the chunked kernels, ``[8, 1, 512, 512]`` 4.8× against 0.7×, softmax focal
``[2, 19, 512, 1024]`` 1.5× against 0.85×. What a user pays: the first call of each loss
configuration compiles, 2–4 s in a fresh process (a C++ compiler must be installed); other batch
sizes reuse it (``dynamic=True``); a failed compile warns once and that configuration stays on the
chunked kernels.

``FOCALKIT_INDUCTOR``: ``0`` (the default: never), ``auto`` (CPU tensors of at least
:data:`MIN_ELEMENTS` elements, when a C++ compiler is found), ``always`` (every CPU call it can take,
failures raised: for tests). It takes the losses without ``sync``, GHM-C's histogram or a ``normalizer``;
the others stay on the chunked kernels. Each configuration (loss, options, dtype) compiles once; a γ or α that
changes every epoch would compile every epoch, so after :data:`MAX_CONFIGURATIONS` of them new ones stay on the
chunked kernels.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

__all__ = ["MIN_ELEMENTS", "sigmoid_loss", "softmax_loss", "wanted"]

MIN_ELEMENTS = 1 << 20  # below this the compiled call's fixed cost (~0.1 ms) eats the gain
MAX_CONFIGURATIONS = 16  # a γ schedule compiles once per value: past this many, new ones stay on the chunked kernels
_MODES = ("0", "auto", "always")
_lock = threading.Lock()
_compiled: dict[tuple, Any] = {}
_failed: set[tuple] = set()


def _mode() -> str:
    mode = os.environ.get("FOCALKIT_INDUCTOR", "0").strip().lower()
    if mode not in _MODES:
        raise ValueError(f"FOCALKIT_INDUCTOR: expected one of {', '.join(_MODES)}; got {mode!r}")
    return mode


@lru_cache(maxsize=1)
def compiler_found() -> bool:
    """Whether a C++ compiler Inductor can call is on the PATH (``CXX``, else ``c++``, ``g++``, ``clang++``)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return any(shutil.which(name) for name in names)


def wanted(x: Tensor) -> bool:
    mode = _mode()
    if mode == "0" or x.device.type != "cpu" or torch.compiler.is_compiling():
        return False
    if mode == "always":
        return True
    return x.numel() >= MIN_ELEMENTS and compiler_found()


def _eligible(sync: Any, normalizer: Any) -> bool:
    return not sync and normalizer is None  # a number normaliser would compile anew for every value


def _run(key: tuple, build: Any, args: tuple) -> Tensor | None:
    if key in _failed:
        return None
    with _lock:
        fn = _compiled.get(key)
        if fn is None:
            if len(_compiled) >= MAX_CONFIGURATIONS:
                return None
            fn = _compiled[key] = torch.compile(build(), dynamic=True)
    try:
        return fn(*args)
    except Exception as err:  # a compiler or Inductor failure: warned once, then the chunked kernels
        if _mode() == "always":
            raise
        _failed.add(key)
        warnings.warn(f"focalkit: compiling the loss with Inductor failed ({type(err).__name__}: {err}); using the "
                      "chunked kernels for it (FOCALKIT_INDUCTOR=0 skips Inductor).", RuntimeWarning, stacklevel=3)
        return None


def _kind(t: Any) -> str:
    return "tensor" if isinstance(t, Tensor) else type(t).__name__


def sigmoid_loss(cfg: Any, x: Tensor, y: Tensor, weight: Tensor | None, pos_weight: Tensor | float | None,
                 normalizer: Any, out_dtype: torch.dtype) -> Tensor | None:
    """The compiled loss, or ``None`` where this path does not take it (the caller runs the chunked one)."""
    if cfg.family == "ghmc" or not _eligible(cfg.sync, normalizer):
        return None
    from .fused import _SigmoidLoss

    key = ("sigmoid", cfg, normalizer, out_dtype, _kind(weight), _kind(pos_weight),
           pos_weight if not isinstance(pos_weight, Tensor) else None)
    number = pos_weight if not isinstance(pos_weight, Tensor) else None

    def build() -> Any:
        def loss(x: Tensor, y: Tensor, weight: Tensor | None, pos_weight: Tensor | None) -> Tensor:
            pw = pos_weight if pos_weight is not None else number
            return _SigmoidLoss.apply(x, y, weight, pw, None, None, cfg, normalizer, out_dtype)
        return loss

    return _run(key, build, (x, y, weight, pos_weight if isinstance(pos_weight, Tensor) else None))


def softmax_loss(cfg: Any, x: Tensor, t: Tensor, weight: Tensor | None, class_factor: Tensor | None,
                 class_weight: Tensor | None, normalizer: Any, out_dtype: torch.dtype) -> Tensor | None:
    if not _eligible(cfg.sync, normalizer):
        return None
    from .fused import _SoftmaxLoss

    key = ("softmax", cfg, normalizer, out_dtype, _kind(weight), _kind(class_factor), _kind(class_weight))

    def build() -> Any:
        def loss(x: Tensor, t: Tensor, weight: Tensor | None, class_factor: Tensor | None,
                 class_weight: Tensor | None) -> Tensor:
            return _SoftmaxLoss.apply(x, t, weight, class_factor, class_weight, cfg, normalizer, out_dtype)
        return loss

    return _run(key, build, (x, t, weight, class_factor, class_weight))
