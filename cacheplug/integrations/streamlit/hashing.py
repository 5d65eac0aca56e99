"""How ``cache_data`` keys what cacheplug's keys do not: ``hash_funcs`` and their defaults.

Streamlit hashes any argument; cacheplug keys the types its keys know (``cacheplug.keys``).
``hash_funcs`` maps a type's ``module.QualName`` to a function whose result keys the
argument instead; pandas DataFrames and Series and NumPy arrays are keyed by their content
by default. A hashed value is wrapped in :class:`Hashed`, so it never shares a key with a
plain value that happens to equal the hash.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import UnkeyableArgumentError

__all__ = ["DEFAULT_HASH_FUNCS", "PLAIN", "Hashed", "hashed"]


def hashed(value: Any, funcs: Mapping[str, Callable[[Any], Any]], depth: int) -> Any:
    """``value`` with every object whose type ``hash_funcs`` names replaced by its hash."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    func = funcs.get(name)
    if func is not None and depth < 8:
        try:
            made = func(value)
        except Exception as exc:
            raise UnkeyableArgumentError(
                f"cannot build a cache key from an argument of type {name}: its hash function "
                f"raised {type(exc).__name__}: {exc}; pass hash_funcs={{{kind.__qualname__}: "
                f"lambda value: ...}} returning something keyable, or start the parameter's name "
                f"with '_' to leave it out of the key"
            ) from exc
        return Hashed(name, hashed(made, funcs, depth + 1))
    if kind in (list, tuple):
        return kind(hashed(v, funcs, depth) for v in value)
    if kind is dict:
        return {k: hashed(v, funcs, depth) for k, v in value.items()}
    if kind in (set, frozenset):
        return kind(hashed(v, funcs, depth) for v in value)
    return value


def _hash_frame(frame: Any) -> str:
    """A DataFrame by content: shape, columns, dtypes, index and every row's values."""
    pandas: Any = importlib.import_module("pandas")
    digest = hashlib.sha256(repr((frame.shape, list(frame.columns), [str(t) for t in frame.dtypes])).encode())
    digest.update(pandas.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _hash_series(series: Any) -> str:
    """A Series by content: name, dtype, index and values."""
    pandas: Any = importlib.import_module("pandas")
    digest = hashlib.sha256(repr((series.name, str(series.dtype), len(series))).encode())
    digest.update(pandas.util.hash_pandas_object(series, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _hash_array(array: Any) -> Any:
    """A NumPy array by content (an object array: by its items, keyed as any argument)."""
    if array.dtype.hasobject:
        return ("object", array.shape, array.tolist())
    numpy: Any = importlib.import_module("numpy")
    data = numpy.ascontiguousarray(array).tobytes()
    return (array.dtype.str, array.shape, hashlib.sha256(data).hexdigest())


# What Streamlit hashes and cacheplug's keys do not: DataFrames, Series and arrays, by content
# (hash_funcs given for these types replace them).
# pandas 3 names its classes' module "pandas", pandas 2 "pandas.core.frame" and so on.
DEFAULT_HASH_FUNCS: dict[str, Callable[[Any], Any]] = {
    "pandas.DataFrame": _hash_frame,
    "pandas.core.frame.DataFrame": _hash_frame,
    "pandas.Series": _hash_series,
    "pandas.core.series.Series": _hash_series,
    "numpy.ndarray": _hash_array,
}


# Types keyed as they are (no hash function applies to them): the common arguments' fast way.
PLAIN = frozenset({int, str, float, bool, type(None), bytes})


class Hashed:
    """What a ``hash_funcs`` function made of an argument, keyed apart from any plain value."""

    __slots__ = ("digest", "type_name")

    def __init__(self, type_name: str, digest: Any) -> None:
        self.type_name = type_name
        self.digest = digest

    def __cache_key__(self) -> tuple[str, Any]:
        return (self.type_name, self.digest)

    def __hash__(self) -> int:
        return hash(self.type_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hashed) and (self.type_name, self.digest) == (other.type_name, other.digest)
