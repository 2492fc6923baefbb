"""The split plan: its wire shape, what it tolerates and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from stereo_types.layout import StorageRoot, VideoJobRef, segment_input_uri, segment_output_uri
from stereo_types.plan import PlannedAudio, PlannedSegment, SplitPlan, plan_uri

ROOT = StorageRoot.parse("s3://media-bucket/jobs")
JOB = VideoJobRef("media", "clip", "0b6f3c1e-8a4d-4c1e-9a53-2f0e6c1d7b42")


def _segment(index: int, frames: int = 30, pre_roll: int = 4) -> PlannedSegment:
    return PlannedSegment(
        index=index,
        input_uri=segment_input_uri(ROOT, JOB, index, "mp4"),
        output_uri=segment_output_uri(ROOT, JOB, index, "mp4"),
        start_frame=30 * index,
        frame_count=frames,
        pre_roll_frames=pre_roll if index else 0,
        start_seconds=index * 1.0,
        duration_seconds=frames / 30,
    )


def _plan(**changes: Any) -> SplitPlan:
    fields: dict[str, Any] = {
        "source": "https://example.com/clip.mp4",
        "fps_num": 30,
        "fps_den": 1,
        "frame_count": 50,
        "width": 1920,
        "height": 1080,
        "duration_seconds": 50 / 30,
        "segment_seconds": 1.0,
        "segment_frames": 30,
        "pre_roll_frames": 4,
        "normalised_variable_rate": False,
        "hdr": False,
        "segment_codec": "h264",
        "audio": PlannedAudio(
            uri=ROOT.uri_for(*JOB.parts(), "audio.m4a"),
            codec="aac",
            offset_seconds=0.0,
            duration_seconds=1.7,
        ),
        "segments": [_segment(0), _segment(1, frames=20)],
    }
    return SplitPlan(**{**fields, **changes})


def test_wire_shape_is_camel_case_and_round_trips() -> None:
    plan = _plan()
    wire = plan.to_wire()
    assert {"fpsNum", "fpsDen", "frameCount", "segmentSeconds", "segmentFrames"} <= wire.keys()
    assert {"preRollFrames", "normalisedVariableRate", "hdr", "segmentCodec"} <= wire.keys()
    assert wire["audio"] == {
        "uri": "s3://media-bucket/jobs/media/clip/0b6f3c1e-8a4d-4c1e-9a53-2f0e6c1d7b42/audio.m4a",
        "codec": "aac",
        "offsetSeconds": 0.0,
        "durationSeconds": 1.7,
    }
    segment = wire["segments"][1]
    assert set(segment) == {
        "index",
        "inputUri",
        "outputUri",
        "startFrame",
        "frameCount",
        "preRollFrames",
        "startSeconds",
        "durationSeconds",
    }
    assert SplitPlan.model_validate_json(json.dumps(wire)) == plan
    assert plan.segments[1].input_frame_count == 24


def test_readers_ignore_fields_they_do_not_know() -> None:
    wire = _plan().to_wire()
    wire["writtenBy"] = "a newer split"
    wire["segments"][0]["checksum"] = "abc"
    assert SplitPlan.model_validate(wire) == _plan()


def test_audio_is_optional_and_omitted_when_absent() -> None:
    wire = _plan(audio=None).to_wire()
    assert "audio" not in wire
    assert SplitPlan.model_validate(wire).audio is None
    minimal = PlannedAudio.model_validate({"uri": "file:///ws/audio.mka"})
    assert (minimal.codec, minimal.offset_seconds, minimal.duration_seconds) == (None, 0.0, None)


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("plan", "fpsNum", 0),
        ("plan", "segmentFrames", 0),
        ("plan", "segmentSeconds", 0),
        ("plan", "durationSeconds", 0),
        ("segment", "outputUri", "/local/path.mp4"),
        ("segment", "inputUri", "https://example.com/a.mp4"),
        ("segment", "frameCount", 0),
        ("segment", "index", 100_000),
        ("segment", "preRollFrames", -1),
    ],
)
def test_invalid_values_are_refused(where: str, field: str, value: object) -> None:
    wire = _plan().to_wire()
    target = wire if where == "plan" else wire["segments"][0]
    target[field] = value
    with pytest.raises(ValidationError):
        SplitPlan.model_validate(wire)


@pytest.mark.parametrize("field", ["outputUri", "inputUri", "startFrame"])
def test_segment_fields_are_required(field: str) -> None:
    wire = _plan().to_wire()
    del wire["segments"][0][field]
    with pytest.raises(ValidationError):
        SplitPlan.model_validate(wire)


def test_plan_uri_sits_in_the_videojob_folder() -> None:
    assert plan_uri(ROOT, JOB) == (
        "s3://media-bucket/jobs/media/clip/0b6f3c1e-8a4d-4c1e-9a53-2f0e6c1d7b42/plan.json"
    )
    assert plan_uri("file:///ws", JOB) == f"file:///ws/media/clip/{JOB.uid}/plan.json"
