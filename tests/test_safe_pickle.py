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
