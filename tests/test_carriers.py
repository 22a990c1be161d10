import json

import numpy as np
import pytest
import safetensors.numpy

from silobridge.boundary import (Activations, Config, ContextQuery, HardLabels, Metrics, PrivacySpend, SoftLabels,
                                 TextBatch, Weights, decode)
from silobridge.boundary.carriers import MAGIC
from silobridge.errors import BoundaryError

CARRIERS = [
    TextBatch(["héllo wörld", "second"], purpose="public pool", labels=[0, 1]),
    ContextQuery(["query one", "query two"], context=np.array([[2, 0], [1, -1]]), purpose="inference",
                 exposure="inference_records"),
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
    c = Config(values={"a": 1, "b": {"d": 2, "c": 3}})
    d = Config(values={"b": {"c": 3, "d": 2}, "a": 1})
    assert c.encode() == d.encode()


def header_len(payload: bytes) -> int:
    return int.from_bytes(payload[:8], "little")


def test_array_bytes_are_counted():
    small = SoftLabels(values=np.zeros((10, 2), np.float32))
    big = SoftLabels(values=np.zeros((1000, 2), np.float32))
    for carrier, rows in ((small, 10), (big, 1000)):  # 8-byte length + JSON header + the raw arrays, exactly
        payload = carrier.encode()
        assert carrier.nbytes - 8 - header_len(payload) == rows * 2 * 4
    header_growth = header_len(big.encode()) - header_len(small.encode())
    assert big.nbytes - small.nbytes - header_growth == 990 * 2 * 4


def test_garbage_payload_is_refused():
    with pytest.raises(BoundaryError, match="not a silobridge carrier"):
        decode(b"not a carrier at all")


def safetensors_would_write(payload: bytes) -> bool:
    """Whether ``payload`` is byte for byte what safetensors itself writes for the same tensors and metadata."""
    meta = json.loads(payload[8:8 + header_len(payload)])["__metadata__"]
    return safetensors.numpy.save(safetensors.numpy.load(payload), metadata=meta) == payload


@pytest.mark.parametrize("carrier", CARRIERS, ids=lambda c: c.kind)
def test_encoding_is_what_safetensors_writes(carrier):
    assert safetensors_would_write(carrier.encode())


def test_payload_is_a_standard_safetensors_file():
    w = Weights(tensors={"layer.0": np.arange(6, dtype=np.float32).reshape(2, 3)}, origin="sm", meta={"r": 4})
    payload = w.encode()
    assert payload[8:].startswith(MAGIC)
    np.testing.assert_array_equal(safetensors.numpy.load(payload)["tensors/layer.0"], w.tensors["layer.0"])


ODD_ARRAYS = {
    "f16": np.array([1.5, -2.0, 65504.0], np.float16),
    "i8": np.array([-128, 0, 127], np.int8),
    "i64": np.array([-(2**63), 2**63 - 1], np.int64),
    "u64": np.array([2**64 - 1], np.uint64),
    "bool": np.array([[True, False], [False, True]]),
    "scalar": np.array(3.25, np.float64),
    "empty": np.zeros((0, 7), np.float32),
    "c64": np.array([1 + 2j], np.complex64),
}


@pytest.mark.parametrize("name", ODD_ARRAYS)
def test_dtype_and_shape_roundtrip_exactly(name):
    arr = ODD_ARRAYS[name]
    payload = Weights(tensors={name: arr, "other": np.ones(2, np.int16)}).encode()
    assert safetensors_would_write(payload)
    back = decode(payload).tensors[name]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_big_endian_and_strided_arrays_are_sent_as_plain_little_endian():
    native = np.arange(12, dtype=np.float32).reshape(3, 4)
    big = native.astype(">f4")
    strided = np.asfortranarray(native)[:, ::2]
    assert HardLabels(values=big).encode() == HardLabels(values=native).encode()
    back = decode(HardLabels(values=strided).encode()).values
    assert back.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(back, native[:, ::2])


def test_decoded_arrays_are_writable_copies():
    back = decode(SoftLabels(values=np.zeros((2, 2), np.float32)).encode())
    back.values[0, 0] = 1.0  # torch.from_numpy needs writable arrays


@pytest.mark.parametrize("carrier", [
    HardLabels(values=np.array(["a", "b"])),
    HardLabels(values=np.zeros(2, np.float128) if hasattr(np, "float128") else np.zeros(2, np.complex128)),
    HardLabels(values=[1, 0]),
    Weights(tensors={"w": [1.0]}),
    Config(values={"x": object()}),
    TextBatch(["lone surrogate \ud800"]),
], ids=["str-array", "wide-float", "list-not-array", "list-in-tensors", "not-json", "bad-unicode"])
def test_unencodable_carriers_raise_a_clear_error(carrier):
    with pytest.raises(BoundaryError, match="cannot encode"):
        carrier.encode()


def test_non_finite_values_are_refused_where_they_make_no_sense():
    nan_logp = SoftLabels(values=np.array([[np.nan, 0.0]], np.float32))
    with pytest.raises(BoundaryError, match="field 'values' .* NaN or infinite"):
        decode(nan_logp.encode())
    with pytest.raises(BoundaryError, match="NaN or infinite"):
        decode(Metrics(values={"loss": float("inf")}).encode())
    w = decode(Weights(tensors={"w": np.array([np.nan, np.inf], np.float32)}).encode())  # weights may hold any
    assert np.isnan(w.tensors["w"][0])
