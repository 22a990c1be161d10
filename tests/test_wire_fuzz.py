"""Fuzzing the wire format: decode() refuses every malformed payload with a BoundaryError, quickly,
and every valid carrier survives a round trip byte for byte."""
import json
import time

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from silobridge.boundary import (Activations, Carrier, Config, HardLabels, Metrics, PrivacySpend, SoftLabels,
                                 TextBatch, Weights, decode)
from silobridge.boundary.carriers import MAX_HEADER
from silobridge.errors import BoundaryError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = [TextBatch(["hé", "x"], labels=[1, 0], soft=np.eye(2, dtype=np.float32), privacy=PrivacySpend(1.0, 1e-5, "g")),
         Weights(tensors={"w": np.arange(6, dtype=np.float16).reshape(2, 3), "b": np.array(True)}, meta={"r": 2})]


def decode_or_refuse(payload) -> Carrier | BoundaryError:
    """decode() either gives a carrier or raises BoundaryError (never another error), in well under a second."""
    start = time.perf_counter()
    try:
        out = decode(payload)
    except BoundaryError as exc:
        out = exc
    assert time.perf_counter() - start < 2.0
    return out


def refused(payload, match: str | None = None) -> BoundaryError:
    out = decode_or_refuse(payload)
    assert isinstance(out, BoundaryError), f"decoded a {out.kind} carrier from a malformed payload"
    assert out.where == "channel" and out.fix
    if match:
        assert match in str(out), str(out)
    return out


def raw(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors-shaped payload with any header (compact JSON, as safetensors writes it)."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return (len(h) if length is None else length).to_bytes(8, "little") + h + data


def carrier(body, tensors: dict | None = None, data: bytes = b"") -> bytes:
    """A payload with silobridge metadata ``body`` (an object, or the raw metadata string)."""
    meta = body if isinstance(body, str) else json.dumps(body)
    return raw({"__metadata__": {"silobridge": meta}, **(tensors or {})}, data)


def f32(name: str, shape: list, offsets: list, dtype: str = "F32") -> dict:
    return {name: {"dtype": dtype, "shape": shape, "data_offsets": offsets}}


# --- hand-made malformed payloads ------------------------------------------------------------------------
MALFORMED = {
    "empty": (b"", "not a silobridge carrier"),
    "short": (b"\x00" * 7, "not a silobridge carrier"),
    "plain safetensors": (raw({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
                          "not a silobridge carrier"),
    "header claims 2**40": (raw(b'{"__metadata__":{"silobridge":"{}"}}', length=2**40), "claims 1099511627776"),
    "header past the end": (raw(b'{"__metadata__":{"silobridge":"{}"}}', length=200), "not a silobridge carrier"),
    "header not json": (raw(b'{"__metadata__":{"silobridge":nope'), "not valid UTF-8 JSON"),
    "header not utf-8": (raw(b'{"__metadata__":{"silobridge":"\xff\xfe"}}'), "not valid UTF-8 JSON"),
    "duplicate keys": (raw(b'{"__metadata__":{"silobridge":"{}","silobridge":"{}"}}'), "duplicate key"),
    "metadata not a string": (raw(b'{"__metadata__":{"silobridge":5}}'), "metadata string"),
    "metadata has extra keys": (raw(b'{"__metadata__":{"silobridge":"{}","x":"y"}}'), "metadata string"),
    "metadata not json": (carrier("nope"), "not valid UTF-8 JSON"),
    "metadata not an object": (carrier("[1,2]"), '{"kind": ...'),
    "metadata deeply nested": (carrier("[" * 100_000), "not valid UTF-8 JSON"),
    "metadata giant int": (carrier('{"kind":"metrics","fields":{"values":{"a":' + "9" * 5000 + "}}}"),
                           "not valid UTF-8 JSON"),
    "lone surrogate in metadata": (carrier('{"kind":"text","fields":{"items":["\\udc80"]}}'), None),
    "no fields": (carrier({"kind": "text"}), '{"kind": ...'),
    "extra top-level key": (carrier({"kind": "text", "fields": {}, "x": 1}), '{"kind": ...'),
    "unknown kind": (carrier({"kind": "nope", "fields": {}}), "unknown carrier kind 'nope'"),
    "kind not a string": (carrier({"kind": ["text"], "fields": {}}), "unknown carrier kind"),
    "unknown field": (carrier({"kind": "text", "fields": {"bogus": 1}}), "no JSON field 'bogus'"),
    "array field as json": (carrier({"kind": "text", "fields": {"soft": [[0.5]]}}), "no JSON field 'soft'"),
    "items not a list": (carrier({"kind": "text", "fields": {"items": "abc"}}), "field 'items'"),
    "items not str": (carrier({"kind": "text", "fields": {"items": ["a", 1]}}), "field 'items'"),
    "labels not ints": (carrier({"kind": "text", "fields": {"labels": [0, 1.5]}}), "field 'labels'"),
    "labels are bools": (carrier({"kind": "text", "fields": {"labels": [True]}}), "field 'labels'"),
    "purpose not str": (carrier({"kind": "text", "fields": {"purpose": None}}), "field 'purpose'"),
    "log not bool": (carrier({"kind": "soft_labels", "fields": {"log": 1}}), "field 'log'"),
    "metric not a number": (carrier({"kind": "metrics", "fields": {"values": {"a": "1"}}}), "field 'values'"),
    "metric is NaN": (carrier('{"kind":"metrics","fields":{"values":{"a":NaN}}}'), "NaN or infinite"),
    "metric overflows to inf": (carrier('{"kind":"metrics","fields":{"values":{"a":1e999}}}'), "NaN or infinite"),
    "config not an object": (carrier({"kind": "config", "fields": {"values": [1]}}), "field 'values'"),
    "privacy wrong type": (carrier({"kind": "text", "fields": {"privacy": {"epsilon": "1", "delta": 0.0,
                                                                          "mechanism": "g"}}}), "field 'privacy'"),
    "privacy missing key": (carrier({"kind": "text", "fields": {"privacy": {"epsilon": 1.0}}}), "field 'privacy'"),
    "privacy extra key": (carrier({"kind": "text", "fields": {"privacy": {"epsilon": 1.0, "delta": 0.0,
                                                                         "mechanism": "g", "x": 1}}}),
                          "field 'privacy'"),
    "exposure not str": (carrier({"kind": "text", "fields": {"exposure": 5}}), "field 'exposure'"),
    "tensor for no field": (carrier({"kind": "soft_labels", "fields": {}}, f32("bogus", [1], [0, 4]), b"\0" * 4),
                            "no array field 'bogus'"),
    "tensor for a json field": (carrier({"kind": "soft_labels", "fields": {}}, f32("log", [1], [0, 4]), b"\0" * 4),
                                "no array field 'log'"),
    "nested tensor for a plain array": (carrier({"kind": "soft_labels", "fields": {}}, f32("values/x", [1], [0, 4]),
                                                b"\0" * 4), "no array field 'values/x'"),
    "plain tensor for a dict of arrays": (carrier({"kind": "weights", "fields": {}}, f32("tensors", [1], [0, 4]),
                                                  b"\0" * 4), "no array field 'tensors'"),
    "unknown dtype": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [1], [0, 4], "F99"), b"\0" * 4),
                      "tensors are malformed"),
    "numpy-style dtype": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [1], [0, 4], "<f4"),
                                  b"\0" * 4), "tensors are malformed"),
    "dtype numpy lacks": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [2], [0, 4], "BF16"),
                                  b"\0" * 4), "tensors are malformed"),
    "shape product overflows": (carrier({"kind": "hard_labels", "fields": {}},
                                        f32("values", [2**32, 2**32, 2**32], [0, 4]), b"\0" * 4),
                                "tensors are malformed"),
    "negative dimension": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [-1], [0, 4]), b"\0" * 4),
                           "tensors are malformed"),
    "shape disagrees with offsets": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [3], [0, 4]),
                                             b"\0" * 4), "tensors are malformed"),
    "offsets past the end": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [2**38], [0, 2**40]),
                                     b"\0" * 4), "tensors are malformed"),
    "offsets with a gap": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [1], [4, 8]), b"\0" * 8),
                           "tensors are malformed"),
    "trailing bytes": (carrier({"kind": "hard_labels", "fields": {}}, f32("values", [1], [0, 4]), b"\0" * 9),
                       "tensors are malformed"),
    "tensor entry not an object": (carrier({"kind": "hard_labels", "fields": {}}, {"values": 5}),
                                   "tensors are malformed"),
    "nan soft labels": (SoftLabels(values=np.array([[0.5, np.nan]], np.float32)).encode(),
                        "field 'values' of a 'soft_labels' carrier holds NaN"),
    "inf activations": (Activations(values=np.full((1, 2), np.inf, np.float16)).encode(), "NaN or infinite"),
    "nan soft in a text batch": (TextBatch(["a"], soft=np.array([[np.nan]], np.float32)).encode(), "field 'soft'"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_payload_is_refused(name):
    payload, match = MALFORMED[name]
    refused(payload, match)


@pytest.mark.parametrize("payload", ["a string", None, 42, [b"x"]], ids=repr)
def test_non_bytes_are_refused(payload):
    refused(payload, "not a silobridge carrier")


def test_header_cap_is_enforced_before_parsing():
    head = b'{"__metadata__":{"silobridge":"'
    payload = raw(head + b" " * (MAX_HEADER + 8 - len(head)), length=MAX_HEADER + 8)  # the bytes are all there
    refused(payload, f"claims {MAX_HEADER + 8} bytes")


@pytest.mark.parametrize("valid", SMALL, ids=lambda c: c.kind)
def test_every_truncation_is_refused(valid):
    payload = valid.encode()
    for cut in range(len(payload)):
        refused(payload[:cut])
    refused(payload + b"\0")


# --- random inputs ---------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_are_refused(payload):
    refused(payload)


@FUZZ
@given(st.binary(max_size=256), st.integers(0, 2**64 - 1))
def test_random_bytes_behind_a_carrier_header_are_refused(tail, length):
    refused(length.to_bytes(8, "little") + b'{"__metadata__":{"silobridge":' + tail)


@FUZZ
@given(st.sampled_from(SMALL), st.data())
def test_bit_flips_are_refused_or_decoded(valid, data):
    payload = bytearray(valid.encode())
    for _ in range(data.draw(st.integers(1, 3))):
        payload[data.draw(st.integers(0, len(payload) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    out = decode_or_refuse(bytes(payload))
    if isinstance(out, Carrier):  # a flip in array data or a text still makes a valid carrier
        assert decode(out.encode()).encode() == out.encode()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@FUZZ
@given(st.one_of(st.text(max_size=64), JSON.map(json.dumps),
                 st.fixed_dictionaries({"kind": st.sampled_from(["text", "soft_labels", "weights", "metrics"]),
                                        "fields": st.dictionaries(st.sampled_from(
                                            ["items", "labels", "log", "values", "tensors", "meta", "privacy", "x"]),
                                            JSON, min_size=1)}).map(json.dumps)))
def test_bogus_metadata_is_refused_or_valid(meta):
    out = decode_or_refuse(carrier(meta))
    if isinstance(out, Carrier):  # the few well-typed bodies hypothesis may stumble on
        assert json.loads(meta)["kind"] == out.kind


def safetensors_would_write(payload: bytes) -> bool:
    """Whether ``payload`` is byte for byte what safetensors itself writes for the same tensors and metadata."""
    meta = json.loads(payload[8:8 + int.from_bytes(payload[:8], "little")])["__metadata__"]
    return safetensors.numpy.save(safetensors.numpy.load(payload), metadata=meta) == payload


# --- round trips of random valid carriers ----------------------------------------------------------------
DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.float16, np.float32, np.float64, np.complex64]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
TEXT = st.text(max_size=20)


def arrays(dtypes=DTYPES, finite=False, endian=True):
    dtype = st.sampled_from(dtypes).map(np.dtype)
    if endian:  # big-endian input arrays must arrive as the same values
        dtype = st.tuples(dtype, st.booleans()).map(lambda d: d[0].newbyteorder(">") if d[1] else d[0])
    elements = {"allow_nan": False, "allow_infinity": False} if finite else None
    return st.tuples(dtype, SHAPES).flatmap(lambda ds: hnp.arrays(ds[0], ds[1], elements=elements))


FLOATS = [np.float16, np.float32, np.float64]
PRIVACY = st.none() | st.builds(PrivacySpend, st.floats(0, 1e3), st.floats(0, 1), TEXT)
COMMON = {"privacy": PRIVACY, "exposure": st.none() | TEXT}
CARRIERS = st.one_of(
    st.builds(TextBatch, st.lists(TEXT, max_size=5), TEXT, st.none() | st.lists(st.integers(), max_size=5),
              st.none() | arrays(FLOATS, finite=True), **COMMON),
    st.builds(SoftLabels, arrays(FLOATS, finite=True), st.booleans(), st.lists(TEXT, max_size=4), **COMMON),
    st.builds(HardLabels, arrays(), **COMMON),
    st.builds(Weights, st.dictionaries(TEXT, arrays(), max_size=4), TEXT, st.dictionaries(TEXT, JSON, max_size=3),
              **COMMON),
    st.builds(Activations, arrays(FLOATS, finite=True), **COMMON),
    st.builds(Metrics, st.dictionaries(TEXT, st.integers() | st.floats(allow_nan=False, allow_infinity=False),
                                       max_size=4), **COMMON),
    st.builds(Config, st.dictionaries(TEXT, JSON, max_size=4), **COMMON),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CARRIERS)
def test_random_carriers_roundtrip_exactly(sent):
    payload = sent.encode()
    assert payload == sent.encode() and sent.nbytes == len(payload)
    back = decode(payload)
    assert type(back) is type(sent) and back.encode() == payload
    assert safetensors_would_write(payload)
    assert back.privacy == sent.privacy and back.exposure == sent.exposure and back.texts() == sent.texts()
    assert back.arrays().keys() == sent.arrays().keys()
    for name, arr in sent.arrays().items():
        got = back.arrays()[name]
        assert got.dtype == arr.dtype.newbyteorder("=") and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
