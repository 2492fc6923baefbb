"""Parsing and validating /invocations bodies and SageMaker's custom attributes (pure)."""

from __future__ import annotations

import json

import pytest

from stereo_infer.invocation import (
    RequestError,
    build_request,
    input_location,
    parse_custom_attributes,
    parse_json,
)

BASE = {
    "input_uri": "s3://b/in.mp4",
    "output_uri": "s3://b/out.mp4",
    "format": "half-sbs",
}


def test_minimal_request_takes_defaults() -> None:
    request = build_request(BASE, None)
    assert request.input_uri == "s3://b/in.mp4" and request.format.value == "half-sbs"
    # No pre-roll: a request's window names its own.
    assert request.stereo.divergence == 2.0 and request.stereo.pre_roll_frames is None
    assert request.depth_model is None  # the server's loaded model
    assert request.engine is None
    assert request.encoding.crf == 20 and request.encoding.preset.value == "medium"


def test_full_request_in_camel_and_snake_case() -> None:
    body = {
        "inputUri": "file:///data/in.mp4",
        "output_uri": "gs://b/out.mkv",
        "format": "anaglyph",
        "stereo": {
            "divergence": 3,
            "convergence": 0.2,
            "depthModel": "Prior",
            "pre_roll_frames": 4,
        },
        "engine": "builtin",
        "encoding": {"codec": "hevc", "crf": 18, "preset": "fast"},
    }
    request = build_request(body, None)
    assert request.stereo.divergence == 3.0 and request.stereo.convergence == 0.2
    assert request.depth_model == "Prior" and request.stereo.pre_roll_frames == 4
    assert request.engine == "builtin"
    assert request.encoding.codec.value == "hevc" and request.encoding.crf == 18


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"input_uri": None}, "inputUri"),
        ({"input_uri": "ftp://x/in.mp4"}, "inputUri"),
        ({"output_uri": "/local/out.mp4"}, "outputUri"),
        ({"format": "hologram"}, "format"),
        ({"stereo": {"divergence": -1}}, "stereo.divergence"),
        ({"stereo": {"convergence": 2}}, "stereo.convergence"),
        ({"stereo": {"depthModel": "../etc"}}, "stereo.depthModel"),
        ({"stereo": {"preRollFrames": 1000}}, "stereo.preRollFrames"),
        ({"stereo": {"strength": 1}}, "stereo.strength"),
        ({"encoding": {"crf": 99}}, "encoding.crf"),
        ({"encoding": {"codec": "vp9"}}, "encoding.codec"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_named(change: dict[str, object], field: str) -> None:
    body = {**BASE, **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(RequestError) as info:
        build_request(body, None)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_custom_attributes_fill_in_and_the_body_wins() -> None:
    header = "format=full-tb; divergence=4.5,depthModel=Prior, preRollFrames=2, crf=30"
    request = build_request({**BASE, "stereo": {"divergence": 1.5}}, header)
    assert request.format.value == "half-sbs"  # the body's
    assert request.stereo.divergence == 1.5  # the body's
    assert request.depth_model == "Prior" and request.stereo.pre_roll_frames == 2
    assert request.encoding.crf == 30
    only_header = build_request(
        {"input_uri": "s3://b/i.mp4", "output_uri": "s3://b/o.mp4"}, "format=vr180"
    )
    assert only_header.format.value == "vr180"


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("turbo=1", "X-Amzn-SageMaker-Custom-Attributes: turbo"),
        ("divergence", "X-Amzn-SageMaker-Custom-Attributes: divergence"),
        ("crf=abc", "encoding.crf"),
    ],
)
def test_bad_custom_attributes(header: str, field: str) -> None:
    with pytest.raises(RequestError) as info:
        build_request(BASE, header)
    assert info.value.field == field


def test_header_parsing() -> None:
    assert parse_custom_attributes(None) == {}
    assert parse_custom_attributes(" engine=builtin ,, outputUri=s3://b/o.mp4") == {
        "engine": "builtin",
        "outputUri": "s3://b/o.mp4",
    }


def test_json_body_errors() -> None:
    with pytest.raises(RequestError, match="body: not valid JSON"):
        parse_json(b"{nope")
    with pytest.raises(RequestError, match="body: must be a JSON object"):
        parse_json(b"[1, 2]")
    assert parse_json(json.dumps(BASE).encode()) == BASE


def test_input_location_pointer() -> None:
    assert input_location({"InputLocation": "s3://b/req.json"}) == "s3://b/req.json"
    assert input_location({"inputLocation": "file:///r.json"}) == "file:///r.json"
    assert input_location({**BASE, "InputLocation": "s3://b/r.json"}) is None
    assert input_location(BASE) is None
