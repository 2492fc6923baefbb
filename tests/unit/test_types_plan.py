"""The split plan: its wire shape, what it tolerates and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from stereo_types.layout import StorageRoot, VideoJobRef, segment_output_uri
from stereo_types.plan import PlannedAudio, PlannedSegment, SourceWindow, SplitPlan, plan_uri

ROOT = StorageRoot.parse("s3://media-bucket/jobs")
SOURCE = "s3://media-bucket/films/clip.mp4"
JOB = VideoJobRef("media", "clip", "0b6f3c1e-8a4d-4c1e-9a53-2f0e6c1d7b42")


def _segment(index: int, frames: int = 30, pre_roll: int = 4) -> PlannedSegment:
    roll = pre_roll if index else 0
    return PlannedSegment(
        index=index,
        input_uri=SOURCE,
        window=SourceWindow(
            stream_index=0,
            time_base_num=1,
            time_base_den=15360,
            seek_seconds=None if index == 0 else 0.9,
            first_pts=512 * (30 * index - roll),
            last_pts=512 * (30 * index + frames - 1),
            pre_roll_frames=roll,
            frame_count=frames,
            lead_frames=3 if index else 0,
            bytes=4096,
        ),
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
        "keyframes": 2,
        "audio": PlannedAudio(
            uri=SOURCE,
            stream_index=1,
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
    assert {"preRollFrames", "normalisedVariableRate", "hdr", "keyframes"} <= wire.keys()
    assert wire["audio"] == {
        "uri": SOURCE,
        "streamIndex": 1,
        "codec": "aac",
        "offsetSeconds": 0.0,
        "durationSeconds": 1.7,
    }
    segment = wire["segments"][1]
    assert set(segment) == {
        "index",
        "inputUri",
        "window",
        "outputUri",
        "startFrame",
        "frameCount",
        "preRollFrames",
        "startSeconds",
        "durationSeconds",
    }
    assert SplitPlan.model_validate_json(json.dumps(wire)) == plan
    assert plan.segments[1].window.output_frames == 24
    assert segment["window"]["seekSeconds"] == 0.9


def test_readers_ignore_fields_they_do_not_know() -> None:
    wire = _plan().to_wire()
    wire["writtenBy"] = "a newer split"
    wire["segments"][0]["checksum"] = "abc"
    assert SplitPlan.model_validate(wire) == _plan()


def test_audio_is_optional_and_omitted_when_absent() -> None:
    wire = _plan(audio=None).to_wire()
    assert "audio" not in wire
    assert SplitPlan.model_validate(wire).audio is None
    minimal = PlannedAudio.model_validate({"uri": "file:///films/clip.mkv"})
    assert (minimal.codec, minimal.offset_seconds, minimal.duration_seconds) == (None, 0.0, None)
    assert minimal.stream_index == 0


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("plan", "fpsNum", 0),
        ("plan", "segmentFrames", 0),
        ("plan", "segmentSeconds", 0),
        ("plan", "durationSeconds", 0),
        ("segment", "outputUri", "/local/path.mp4"),
        ("segment", "inputUri", "ftp://example.com/a.mp4"),
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


@pytest.mark.parametrize("field", ["outputUri", "inputUri", "window", "startFrame"])
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
