import numpy as np
import pytest

from silobridge.boundary import (Activations, Config, HardLabels, Metrics, PrivacySpend, SoftLabels, TextBatch,
                                 Weights, decode)
from silobridge.errors import BoundaryError

CARRIERS = [
    TextBatch(["héllo wörld", "second"], purpose="public pool", labels=[0, 1]),
    SoftLabels(values=np.arange(6, dtype=np.float32).reshape(3, 2), label_names=["a", "b"]),
    HardLabels(values=np.array([1, 0, 1])),
    Weights(tensors={"b": np.ones((2, 3), np.float32), "a": np.zeros(4, np.float16)}, origin="adapter"),
    Activations(values=np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32),
                privacy=PrivacySpend(1.5, 1e-5, "gaussian")),
    Metrics(values={"loss": 0.5}),
    Config(values={"rounds": 3, "names": ["x"]}),
]


@pytest.mark.parametrize("carrier", CARRIERS, ids=lambda c: c.kind)
def test_roundtrip_is_exact_and_deterministic(carrier):
    payload = carrier.encode()
    assert carrier.nbytes == len(payload)
    assert payload == carrier.encode()  # deterministic
    back = decode(payload)
    assert type(back) is type(carrier)
    assert back.encode() == payload
    for name, arr in carrier.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], arr)
        assert back.arrays()[name].dtype == arr.dtype
    assert back.privacy == carrier.privacy


def test_weights_encoding_ignores_dict_order():
    a = Weights(tensors={"x": np.ones(3, np.float32), "y": np.zeros(2, np.float32)})
    b = Weights(tensors={"y": np.zeros(2, np.float32), "x": np.ones(3, np.float32)})
    assert a.encode() == b.encode()


def test_array_bytes_are_counted():
    small = SoftLabels(values=np.zeros((10, 2), np.float32))
    big = SoftLabels(values=np.zeros((1000, 2), np.float32))
    header_growth = len("1000") - len("10")  # the shape is written in the JSON header
    assert big.nbytes - small.nbytes - header_growth == 990 * 2 * 4


def test_garbage_payload_is_refused():
    with pytest.raises(BoundaryError, match="not a silobridge carrier"):
        decode(b"not a carrier at all")
