import os
import pickle
import shutil

import numpy as np
import pytest
from py2pickle import dumps_py2

from harness.data.dataset import DataOptions, TextImageDataset
from harness.data.safe_pickle import safe_load_pickle
from harness.data.sources import load_index
from harness.errors import UserError


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "filenames.pickle"
    path.write_bytes(pickle.dumps([_Evil(f"touch {marker}")], protocol=2))
    with pytest.raises(UserError) as err:
        safe_load_pickle(path)
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"c__builtin__\neval\n(S'1+1'\ntR.",
    b"csubprocess\ncheck_output\n(S'id'\ntR.",
    # numpy functions are not data: numpy.load can open a second pickle with allow_pickle=True.
    b"cnumpy\nload\n(S'x.npy'\nNI01\ntR.",
    b"cnumpy\nfromfile\n(S'/etc/passwd'\ntR.",
])
def test_other_callables_are_refused(tmp_path, payload):
    path = tmp_path / "x.pickle"
    path.write_bytes(payload)
    with pytest.raises(UserError, match="not plain data"):
        safe_load_pickle(path)


def test_truncated_pickle_names_the_file(tmp_path):
    path = tmp_path / "class_info.pickle"
    path.write_bytes(pickle.dumps(list(range(100)), protocol=2)[:-20])
    with pytest.raises(UserError, match="class_info.pickle: corrupt or truncated"):
        safe_load_pickle(path)


def test_python2_array_pickle_round_trips(tmp_path):
    arr = (np.arange(2 * 10 * 16, dtype=np.float32).reshape(2, 10, 16) / 3).astype(np.float32)
    path = tmp_path / "emb.pickle"
    path.write_bytes(dumps_py2([arr[0], arr[1]]))
    loaded = np.asarray(safe_load_pickle(path))
    assert loaded.dtype == np.float32 and np.array_equal(loaded, arr)


def test_released_format_folder_loads(synth_copy):
    """The synthbirds folder rewritten with Python 2 pickles, as the released Data/birds is."""
    rng = np.random.default_rng(0)
    sizes = {}
    for split in ("train", "test"):
        keys = safe_load_pickle(synth_copy / split / "filenames.pickle")
        classes = safe_load_pickle(synth_copy / split / "class_info.pickle")
        sizes[split] = len(keys)
        (synth_copy / split / "filenames.pickle").write_bytes(dumps_py2(list(keys)))
        (synth_copy / split / "class_info.pickle").write_bytes(dumps_py2([int(c) for c in classes]))
        emb = rng.standard_normal((len(keys), 10, 1024)).astype(np.float32)
        # The released embeddings are a list of per-image (10, 1024) arrays.
        (synth_copy / split / "char-CNN-RNN-embeddings.pickle").write_bytes(
            dumps_py2([e for e in emb]))
        lr = rng.integers(0, 255, (len(keys), 76, 76, 3), dtype=np.uint8)
        (synth_copy / split / "76images.pickle").write_bytes(dumps_py2(lr))
        if split == "train":
            train_emb, train_lr = emb, lr
    index = load_index(synth_copy, "train")
    assert len(index) == sizes["train"] and index.bboxes.shape == (sizes["train"], 4)
    ds = TextImageDataset(DataOptions(str(synth_copy), image_sizes=(64,), augment=False,
                                      text_strategy="one", wrong_strategy="in_batch"))
    assert ds.preresized is not None  # the 76images.pickle is used when present
    sample = ds[2]
    chosen = int(sample["caption_ids"][0])
    assert np.allclose(sample["embedding"].numpy(), train_emb[2, chosen])
    expected = train_lr[2, 6:70, 6:70].astype(np.float32) / 127.5 - 1
    assert np.allclose(sample["images"][64].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    assert sample["caption"] == index.captions(2)[chosen]


def test_unknown_embedding_shape_is_reported(synth_copy):
    shutil.copy(synth_copy / "test" / "filenames.pickle", synth_copy / "x")
    (synth_copy / "train" / "char-CNN-RNN-embeddings.pickle").write_bytes(
        dumps_py2(np.zeros((3, 10, 8), np.float32)))
    with pytest.raises(UserError, match=r"shape \(3, 10, 8\).*expected"):
        TextImageDataset(DataOptions(str(synth_copy)))


class _CraftedDtype:
    """A V8 dtype whose field is an object, with the flags of a dtype that holds no objects."""

    def __reduce__(self):
        return (np.dtype, ("V8", False, True),
                (3, "|", None, ("f",), {"f": (np.dtype("O"), 0)}, 8, 1, 0))


class _CraftedArray:
    def __init__(self, shape, dtype, data):
        self.args = shape, dtype, data

    def __reduce__(self):
        core = getattr(np, "_core", None) or np.core
        shape, dtype, data = self.args
        return (core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def _load_in_subprocess(path):
    """safe_load_pickle then np.asarray (what data check and the embedding loader do), in a
    child process: a crash there is an exit code, not a dead test run."""
    import subprocess
    import sys

    code = ("import numpy as np, sys\n"
            "from harness.data.safe_pickle import safe_load_pickle\n"
            "from harness.errors import UserError\n"
            "try:\n"
            f"    print(np.asarray(safe_load_pickle({str(path)!r}), dtype=object).shape)\n"
            "except UserError as e:\n"
            "    print('REFUSED', e); sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_an_object_field_disguised_as_data_is_refused_not_a_crash(tmp_path):
    path = tmp_path / "char-CNN-RNN-embeddings.pickle"
    path.write_bytes(pickle.dumps([_CraftedArray((1,), _CraftedDtype(), b"\x41" * 8)], protocol=2))
    done = _load_in_subprocess(path)
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr[-500:])
    assert "REFUSED" in done.stdout and str(path) in done.stdout and "dtype" in done.stdout


def test_a_tiny_file_declaring_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "76images.pickle"
    path.write_bytes(pickle.dumps(_CraftedArray((1 << 40,), np.dtype("float64"), b"\x00" * 8), protocol=2))
    assert len(path.read_bytes()) < 300
    with pytest.raises(UserError, match=r"76images.pickle.*declaring 8,796,093,022,208 bytes"):
        safe_load_pickle(path)
    short = tmp_path / "short.pickle"
    short.write_bytes(pickle.dumps(_CraftedArray((4,), np.dtype("float32"), b"\x00" * 8), protocol=2))
    with pytest.raises(UserError, match="short.pickle.*does not match its shape"):
        safe_load_pickle(short)
