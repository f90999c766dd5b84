"""benchmark/data/idx.py: IDX bytes round-trip, malformed files are named, torchvision reads
ours."""

import numpy as np
import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

from benchmark.data import idx


@pytest.mark.parametrize("shape", [(7,), (5, 28, 28), (3, 4, 2)])
def test_encode_decode_round_trip(shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    data = idx.encode(array)
    assert len(data) == idx.header_size(len(shape)) + array.size
    np.testing.assert_array_equal(idx.decode(data), array)


def test_torchvision_reads_what_we_write(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.arange(6, dtype=np.uint8)
    (tmp_path / "images").write_bytes(idx.encode(images))
    (tmp_path / "labels").write_bytes(idx.encode(labels))
    assert torch.equal(read_image_file(str(tmp_path / "images")), torch.from_numpy(images))
    assert torch.equal(read_label_file(str(tmp_path / "labels")), torch.from_numpy(labels).long())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x01" + b[1:], "bad magic"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "not unsigned byte"),
        (lambda b: b[:-1], "expected"),
        (lambda b: b + b"\x00", "expected"),
        (lambda b: b[:6], "truncated IDX header"),
    ],
)
def test_decode_rejects_malformed(mutate, message):
    good = idx.encode(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=message):
        idx.decode(mutate(good))


def test_encode_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        idx.encode(np.zeros(3, np.int64))
