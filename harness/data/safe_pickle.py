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


def _allowed_globals() -> dict[tuple[str, str], Any]:
    if _ALLOWED:
        return _ALLOWED
    core = getattr(np, "_core", None) or np.core
    multiarray = core.multiarray
    numeric = core.numeric
    for module in _NUMPY_CORE:
        _ALLOWED[(module, "_reconstruct")] = multiarray._reconstruct
        _ALLOWED[(module, "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            _ALLOWED[(module, "_frombuffer")] = numeric._frombuffer
    _ALLOWED[("numpy", "ndarray")] = np.ndarray
    _ALLOWED[("numpy", "dtype")] = np.dtype
    # Python 3 writes the raw bytes of an array with protocol <= 2 as _codecs.encode(str, latin1).
    import codecs

    _ALLOWED[("_codecs", "encode")] = codecs.encode
    return _ALLOWED


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
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path}: not loaded, the pickle is not plain data ({exc}); "
            "only lists, tuples, dicts, strings, numbers and numpy arrays are accepted"
        ) from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise UserError(f"{path}: corrupt or truncated pickle ({type(exc).__name__}: {exc})") from exc


def dump_pickle(obj: Any, path: str | os.PathLike) -> None:
    """Write a data pickle atomically with protocol 2, which the released files use."""
    from harness.atomic import write_bytes_atomic

    write_bytes_atomic(path, pickle.dumps(obj, protocol=2))
