"""Writes pickles byte for byte as Python 2's cPickle (protocol 2) writes the released files.

Python 2 is not available here, so the opcodes are emitted directly: strings as SHORT_BINSTRING /
BINSTRING (Python 2 ``str``), numpy arrays through ``numpy.core.multiarray._reconstruct`` with
their raw bytes as a Python 2 ``str``, as numpy 1.x on Python 2 reduced them. ``pickletools``
can disassemble the result; no Python-3-only opcode (BINUNICODE, BINBYTES, FRAME, ...) occurs.
"""

from __future__ import annotations

import struct

import numpy as np

PROTO2 = b"\x80\x02"


def _str(s: str | bytes) -> bytes:
    data = s.encode("latin1") if isinstance(s, str) else s
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _tuple(items: list[bytes]) -> bytes:
    if len(items) == 1:
        return items[0] + b"\x85"
    if len(items) == 2:
        return b"".join(items) + b"\x86"
    if len(items) == 3:
        return b"".join(items) + b"\x87"
    return b"(" + b"".join(items) + b"t"


def _dtype(dt: np.dtype) -> bytes:
    order = {"<": "<", ">": ">", "|": "|", "=": "<"}[dt.byteorder]
    state = _tuple([_int(3), _str(order), b"N", b"N", b"N", b"J\xff\xff\xff\xff",
                    b"J\xff\xff\xff\xff", _int(0)])
    return (b"cnumpy\ndtype\n" + _tuple([_str(dt.str[1:]), _int(0), _int(1)]) + b"R"
            + state + b"b")


def _ndarray(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr)
    head = (b"cnumpy.core.multiarray\n_reconstruct\n"
            + _tuple([b"cnumpy\nndarray\n", _tuple([_int(0)]), _str("b")]) + b"R")
    shape = _tuple([_int(int(d)) for d in arr.shape]) if arr.ndim else b")"
    state = _tuple([_int(1), shape, _dtype(arr.dtype), b"\x89", _str(arr.tobytes())])
    return head + state + b"b"


def _value(obj) -> bytes:
    if isinstance(obj, np.ndarray):
        return _ndarray(obj)
    if isinstance(obj, str):
        return _str(obj)
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return _int(obj)
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, list):
        return b"](" + b"".join(_value(v) for v in obj) + b"e" if obj else b"]"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_value(k) + _value(v) for k, v in obj.items()) + b"u"
    raise TypeError(type(obj))


def dumps_py2(obj) -> bytes:
    return PROTO2 + _value(obj) + b"."
