"""The restricted unpickler's guards one by one (found by mutation testing: each assertion here
kills mutants of harness/data/safe_pickle.py that the file-level tests let through)."""

import pickle

import numpy as np
import pytest
from py2pickle import dumps_py2

from harness.data import safe_pickle
from harness.data.safe_pickle import _GuardedArray, check_dtype, dump_pickle, safe_load_pickle
from harness.errors import UserError

DATA = {"emb": np.arange(12, dtype=np.float32).reshape(3, 4) / 7, "ids": np.arange(5, dtype=np.int64),
        "mask": np.array([True, False]), "names": np.array([b"ab", b"cde"]),
        "words": np.array(["x", "yz"]), "nested": [(np.float32(1.5), np.int64(-3)), {"k": 2.5}],
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "empty": np.zeros((0, 3), np.float32)}


def _same(a, b):
    if isinstance(a, np.ndarray | np.generic):
        return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_of_plain_data_round_trips(tmp_path, protocol):
    safe_pickle._ALLOWED.clear()  # the allow-list is built on first use: build it in this test
    path = tmp_path / "data.pickle"
    path.write_bytes(pickle.dumps(DATA, protocol=protocol))
    loaded = safe_load_pickle(path)
    assert _same(DATA, loaded)
    assert type(loaded["emb"]) is np.ndarray  # not the guarded subclass used while loading


def test_python2_pickles_under_both_numpy_module_names(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    old = dumps_py2([arr])
    for module in (b"numpy.core.multiarray", b"numpy._core.multiarray"):
        safe_pickle._ALLOWED.clear()
        path = tmp_path / "py2.pickle"
        path.write_bytes(old.replace(b"numpy.core.multiarray", module))
        assert _same([arr], safe_load_pickle(path))


def test_dump_pickle_writes_protocol_2_atomically(tmp_path):
    path = tmp_path / "out.pickle"
    dump_pickle(DATA, path)
    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x02" and _same(DATA, pickle.loads(raw))
    assert [p.name for p in tmp_path.iterdir()] == ["out.pickle"]


@pytest.mark.parametrize("dtype", ["f4", "<f8", "i8", "u1", "?", "S5", "U3", "c8"])
def test_plain_dtypes_pass(dtype):
    check_dtype(np.dtype(dtype))


@pytest.mark.parametrize("dtype, why", [
    (np.dtype("O"), "objects, fields and void"),
    (np.dtype("V8"), "objects, fields and void"),
    (np.dtype([("a", "f4")]), "objects, fields and void"),
    (np.dtype("(2,)f4"), "objects, fields and void"),
    (np.dtype([("o", "O")]), "objects, fields and void"),
    ("f4", "whose dtype is a str"),
])
def test_other_dtypes_are_refused(dtype, why):
    with pytest.raises(pickle.UnpicklingError, match=why):
        check_dtype(dtype)


def _guarded():
    core = getattr(np, "_core", None) or np.core
    return core.multiarray._reconstruct(_GuardedArray, (0,), b"b")


F4 = np.dtype("f4")


@pytest.mark.parametrize("state, why", [
    ([1, (2,), F4, False, b"\0" * 8], "malformed state"),
    ((1, (2,), F4), "malformed state"),
    ((1, (2,), F4, False, b"\0" * 8, 0), "malformed state"),
    ((1, [2], F4, False, b"\0" * 8), "malformed shape"),
    ((1, (-2,), F4, False, b"\0" * 8), "malformed shape"),
    ((1, (2.0,), F4, False, b"\0" * 8), "malformed shape"),
    ((1, (2,), np.dtype("O"), False, b"\0" * 8), "objects, fields and void"),
    ((1, (1 << 40, 1 << 10), F4, False, b"\0" * 8), r"declaring 4,503,599,627,370,496 bytes"),
    # 2^64 elements: an int64 product wraps to 0, which empty data would then match.
    ((1, (1 << 32, 1 << 32), F4, False, b""), r"declaring 73,786,976,294,838,206,464 bytes"),
    ((1, (2,), F4, False, b"\0" * 7), r"data \(7 bytes\) does not match its shape \(2,\)"),
    ((1, (2,), F4, False, b"\0" * 9), r"data \(9 bytes\)"),
    ((1, (2,), F4, False, [0.0, 0.0]), r"data \(list\)"),
])
def test_array_states_are_checked_before_numpy_sees_them(state, why):
    with pytest.raises(pickle.UnpicklingError, match=why):
        _guarded().__setstate__(state)


def test_the_size_limit_is_inclusive_and_a_python2_string_is_raw_bytes(monkeypatch):
    arr = _guarded()
    arr.__setstate__((1, (2,), F4, False, np.array([1.5, -2.0], F4).tobytes().decode("latin1")))
    assert arr.view(np.ndarray).tolist() == [1.5, -2.0]
    monkeypatch.setattr(safe_pickle, "MAX_ARRAY_BYTES", 8)
    _guarded().__setstate__((1, (2,), F4, False, b"\0" * 8))  # exactly the limit: accepted
    with pytest.raises(pickle.UnpicklingError, match="more than the 8 a data file may hold"):
        _guarded().__setstate__((1, (3,), F4, False, b"\0" * 12))
    arr = _guarded()
    arr.__setstate__(((3,), np.dtype("u1"), False, b"abc"))  # numpy's 4-tuple state
    assert bytes(arr.view(np.ndarray)) == b"abc"


def test_an_array_subclass_or_a_standalone_bad_dtype_is_refused(tmp_path):
    path = tmp_path / "x.pickle"
    path.write_bytes(pickle.dumps(np.ma.masked_array([1.0, 2.0]), protocol=2))
    with pytest.raises(UserError, match="not plain data"):
        safe_load_pickle(path)
    path.write_bytes(pickle.dumps([np.dtype([("a", "f4")])], protocol=2))
    with pytest.raises(UserError, match="objects, fields and void"):
        safe_load_pickle(path)


def test_bytes_is_admitted_only_empty(tmp_path):
    path = tmp_path / "x.pickle"
    for fix_imports in (True, False):  # __builtin__.bytes or builtins.bytes
        safe_pickle._ALLOWED.clear()
        path.write_bytes(pickle.dumps([b"", np.zeros(0, np.int8)], protocol=2, fix_imports=fix_imports))
        empty = safe_load_pickle(path)
        assert empty[0] == b"" and empty[1].shape == (0,) and empty[1].dtype == np.int8
    path.write_bytes(b"c__builtin__\nbytes\n(I1099511627776\ntR.")  # bytes(2**40): 1 TiB
    with pytest.raises(UserError, match="only bytes\\(\\) is data"):
        safe_load_pickle(path)


def test_unknown_globals_are_named_and_unreadable_files_are_user_errors(tmp_path):
    path = tmp_path / "x.pickle"
    path.write_bytes(b"cnumpy\nfloat32\n.")  # a numpy scalar type: data
    assert safe_load_pickle(path) is np.float32
    path.write_bytes(b"cnumpy\nrandom\n.")  # a module, not a type
    with pytest.raises(UserError, match="refusing to load global 'numpy.random'"):
        safe_load_pickle(path)
    path.write_bytes(b"cnumpy\nndenumerate\n.")  # a type, but not a numpy scalar
    with pytest.raises(UserError, match="refusing to load global 'numpy.ndenumerate'"):
        safe_load_pickle(path)
    with pytest.raises(UserError, match=r"missing.pickle: cannot read \(No such file"):
        safe_load_pickle(tmp_path / "missing.pickle")
