"""A restricted unpickler for the released StackGAN data files.

The released ``filenames.pickle``, ``class_info.pickle``, ``char-CNN-RNN-embeddings.pickle`` and
``76images.pickle``/``304images.pickle`` are Python 2 pickles of lists, dicts, strings, numbers
and numpy arrays. ``pickle.load`` would run any callable a file names, so a downloaded file could
execute code; this loader admits only the globals those files need and refuses anything else
with an error that names the file.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UserError

# numpy moved its internals from numpy.core to numpy._core in 2.0; Python 2 pickles name the
# old module, so both spellings are admitted and resolved against the installed numpy.
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
               "numpy._core.numeric")
_ALLOWED: dict[tuple[str, str], Any] = {}
# The largest array a data file may declare (the released CUB 304images.pickle is 2.5 GB).
MAX_ARRAY_BYTES = 8 << 30


class _GuardedArray(np.ndarray):
    """What ``_reconstruct`` builds while loading: its ``__setstate__`` checks the declared
    dtype, shape and data before numpy allocates or interprets anything. A crafted dtype with an
    object field flagged as object-free made ``np.asarray`` crash the interpreter; a 100-byte
    file declaring a 9 TiB array made numpy try to allocate it."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("an ndarray with a malformed state")
        shape, dtype, _, raw = state[-4:]
        check_dtype(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise pickle.UnpicklingError(f"an ndarray with a malformed shape {shape!r}")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared > MAX_ARRAY_BYTES:
            raise pickle.UnpicklingError(f"an ndarray declaring {declared:,} bytes (more than the "
                                         f"{MAX_ARRAY_BYTES:,} a data file may hold)")
        if isinstance(raw, str):
            raw = raw.encode("latin1")
        if not isinstance(raw, bytes | bytearray) or len(raw) != declared:
            got = f"{len(raw)} bytes" if isinstance(raw, bytes | bytearray) else type(raw).__name__
            raise pickle.UnpicklingError(f"an ndarray whose data ({got}) does not match its shape "
                                         f"{shape} and dtype {dtype}")
        super().__setstate__(state)


def check_dtype(dtype: Any) -> None:
    """Only plain numeric, boolean and string dtypes: no objects, no fields, no void."""
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"an ndarray whose dtype is a {type(dtype).__name__}")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind in "OV" or dtype.hasobject:
        raise pickle.UnpicklingError(f"an ndarray of dtype {dtype!r} (objects, fields and void "
                                     "dtypes are not data)")


def _guarded_reconstruct(subtype, shape, dtype):
    core = getattr(np, "_core", None) or np.core
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"an array of type {subtype!r}")
    return core.multiarray._reconstruct(_GuardedArray, shape, dtype)


def _plain(obj: Any) -> Any:
    """The loaded structure with every guarded array turned back into a plain ndarray, and
    every dtype checked (a crafted one may also stand alone)."""
    if isinstance(obj, _GuardedArray):
        return obj.view(np.ndarray)
    if isinstance(obj, np.ndarray | np.dtype):
        check_dtype(obj.dtype if isinstance(obj, np.ndarray) else obj)
        return obj
    if isinstance(obj, list):
        return [_plain(x) for x in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(x) for x in obj)
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    return obj


def _allowed_globals() -> dict[tuple[str, str], Any]:
    if _ALLOWED:
        return _ALLOWED
    core = getattr(np, "_core", None) or np.core
    multiarray = core.multiarray
    numeric = core.numeric
    for module in _NUMPY_CORE:
        _ALLOWED[(module, "_reconstruct")] = _guarded_reconstruct
        _ALLOWED[(module, "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            _ALLOWED[(module, "_frombuffer")] = numeric._frombuffer
    _ALLOWED[("numpy", "ndarray")] = np.ndarray
    _ALLOWED[("numpy", "dtype")] = np.dtype
    # Python 3 writes the raw bytes of an array with protocol <= 2 as _codecs.encode(str, latin1).
    import codecs

    _ALLOWED[("_codecs", "encode")] = codecs.encode
    # ... and empty bytes (an empty array's data) as bytes(): only the empty call is admitted,
    # bytes(n) would allocate n bytes.
    _ALLOWED[("__builtin__", "bytes")] = _ALLOWED[("builtins", "bytes")] = _empty_bytes
    return _ALLOWED


def _empty_bytes(*args) -> bytes:
    if args:
        raise pickle.UnpicklingError(f"bytes{args!r} (only bytes() is data)")
    return b""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        key = (module, name)
        if key in allowed:
            return allowed[key]
        # numpy scalar types such as numpy.float32 / numpy.int64 are plain data.
        if module == "numpy" and isinstance(getattr(np, name, None), type) and issubclass(
            getattr(np, name), np.generic
        ):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}'")


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Load a data pickle (Python 2 or 3), admitting only data types. Errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return _plain(_RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load())
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path}: not loaded, the pickle is not plain data ({exc}); "
            "only lists, tuples, dicts, strings, numbers and numpy arrays are accepted"
        ) from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise UserError(f"{path}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from exc


def dump_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Write a data pickle atomically with protocol 2, which the released files use."""
    from harness.atomic import write_bytes_atomic

    write_bytes_atomic(path, pickle.dumps(obj, protocol=2))
