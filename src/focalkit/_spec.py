"""The loss-spec grammar shared by ``focalkit compare --losses`` and :func:`focalkit.hf.loss_func`:
``name`` or ``name:key=value,key=value``; a value is a number, ``none`` / ``off`` / ``null``, or
``true`` / ``false``. Each caller checks the names and keys it knows."""

from __future__ import annotations

__all__ = ["split_spec", "value_of"]

_NONE = {"none", "off", "null"}
_BOOL = {"true": True, "false": False}


def value_of(text: str) -> float | int | bool | None:
    """``"2"`` → 2, ``"0.25"`` → 0.25, ``"none"`` → None, ``"true"`` → True; ValueError otherwise."""
    word = text.strip().lower()
    if word in _NONE:
        return None
    if word in _BOOL:
        return _BOOL[word]
    try:
        return int(word)
    except ValueError:
        return float(word)


def split_spec(text: str, *, what: str) -> tuple[str, list[tuple[str, str]]]:
    """``"focal:gamma=2, alpha=0.25"`` → ``("focal", [("gamma", "2"), ("alpha", "0.25")])``: the lower-cased
    name and the raw key / value texts, in order. ``what`` names the argument in the error."""
    if not isinstance(text, str):
        raise TypeError(f"{what}: expected a loss spec such as 'focal:gamma=2'; got {type(text).__name__}.")
    name, _, rest = text.strip().partition(":")
    pairs: list[tuple[str, str]] = []
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"{what}: expected key=value in {text!r}; got {item!r}.")
            pairs.append((key.strip(), value.strip()))
    return name.strip().lower(), pairs
