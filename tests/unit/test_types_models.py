"""The wire models: defaults, validation, completion ordering, conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stereo_types.backend import (
    HTTP_ONLY_FOR_HTTP,
    HTTP_REQUIRED,
    MANAGED_ONLY_FOR_MANAGED,
    MANAGED_REQUIRED,
    STUB_REQUIRES_COPY,
    BackendSpec,
    BackendType,
    Engine,
)
from stereo_types.conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_condition_true,
    set_condition,
)
from stereo_types.events import StorageEvent, StorageEventKind
from stereo_types.formats import Container, OutputFormat
from stereo_types.layout import SegmentRef, VideoJobRef
from stereo_types.segment import (
    CompletionSource,
    SegmentCompletion,
    SegmentPhase,
    SegmentSpec,
    SegmentStatus,
    compare_completions,
    should_replace_completion,
)
from stereo_types.videojob import (
    FORMAT_IMMUTABLE,
    SEGMENT_LONGER_THAN_TIMEOUT,
    SOURCE_IMMUTABLE,
    VideoJobPhase,
    VideoJobSpec,
    VideoJobStatus,
    format_progress,
    immutable_changes,
    pre_roll_frames,
    resolve_output_uri,
)

SOURCE = "s3://media/in/movie.mp4"
UID = "0b7c2f1e-8d0a-4e0e-9a51-2d3c4b5a6f70"
T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def error_locations(error: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(e["loc"]) for e in error.errors()]


def test_videojob_spec_defaults_on_the_wire() -> None:
    assert VideoJobSpec(source=SOURCE).to_wire() == {
        "source": SOURCE,
        "format": "full-sbs",
        "stereo": {
            "divergence": 2.0,
            "convergence": 0.5,
            "depthModel": "Any_V2_S",
        },
        "encoding": {
            "codec": "h264",
            "crf": 20,
            "preset": "medium",
            "encoder": "software",
            "container": "mp4",
        },
        "output": {"keepOnDelete": True},
        "segmentSeconds": 300,
        "parallelism": 4,
        "maxRetries": 3,
        "backoffSeconds": 10,
        "timeouts": {"segmentSeconds": 3600, "completionGraceSeconds": 120},
        "backend": {"type": "job", "engine": "builtin"},
        "suspend": False,
    }


def test_camel_case_and_snake_case_both_populate() -> None:
    by_alias = VideoJobSpec.model_validate(
        {"source": SOURCE, "segmentSeconds": 60, "stereo": {"preRollFrames": 8}}
    )
    by_name = VideoJobSpec.model_validate(
        {"source": SOURCE, "segment_seconds": 60, "stereo": {"pre_roll_frames": 8}}
    )
    assert by_alias == by_name
    assert by_alias.stereo.pre_roll_frames == 8
    assert VideoJobSpec.model_validate(by_alias.to_wire()) == by_alias


@pytest.mark.parametrize(
    ("spec", "location"),
    [
        ({"source": "ftp://host/v.mp4"}, ("source",)),
        ({"source": "s3://b/has space"}, ("source",)),
        ({"format": "side-by-side"}, ("format",)),
        ({"stereo": {"divergence": 0}}, ("stereo", "divergence")),
        ({"stereo": {"divergence": 10.5}}, ("stereo", "divergence")),
        ({"stereo": {"convergence": 1.5}}, ("stereo", "convergence")),
        ({"stereo": {"depthModel": "bad-name"}}, ("stereo", "depthModel")),
        ({"stereo": {"depthModel": "x" * 65}}, ("stereo", "depthModel")),
        ({"stereo": {"preRollFrames": 121}}, ("stereo", "preRollFrames")),
        ({"encoding": {"codec": "av1"}}, ("encoding", "codec")),
        ({"encoding": {"crf": 52}}, ("encoding", "crf")),
        ({"encoding": {"preset": "turbo"}}, ("encoding", "preset")),
        ({"encoding": {"container": "avi"}}, ("encoding", "container")),
        ({"output": {"uri": "https://host/out.mp4"}}, ("output", "uri")),
        ({"workspace": "http://host/work"}, ("workspace",)),
        ({"segmentSeconds": 0}, ("segmentSeconds",)),
        ({"segmentSeconds": 3601}, ("segmentSeconds",)),
        ({"parallelism": 1001}, ("parallelism",)),
        ({"maxRetries": 21}, ("maxRetries",)),
        ({"backoffSeconds": -1}, ("backoffSeconds",)),
        ({"timeouts": {"completionGraceSeconds": -1}}, ("timeouts", "completionGraceSeconds")),
        ({"backend": {"type": "lambda"}}, ("backend", "type")),
        ({"segmentSecond": 60}, ("segmentSecond",)),  # typo: unknown fields are errors
    ],
)
def test_validation_errors_name_the_field(spec: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as error:
        VideoJobSpec.model_validate({"source": SOURCE, **spec})
    assert location in [loc[: len(location)] for loc in error_locations(error.value)]


def test_workspace_must_be_a_valid_root() -> None:
    with pytest.raises(ValidationError, match="invalid s3 bucket name 'Media'"):
        VideoJobSpec(source=SOURCE, workspace="s3://Media/work")
    assert VideoJobSpec(source=SOURCE, workspace="gs://media/work").workspace == "gs://media/work"


def test_segment_must_fit_in_the_job_timeout() -> None:
    with pytest.raises(ValidationError, match=SEGMENT_LONGER_THAN_TIMEOUT):
        VideoJobSpec.model_validate(
            {"source": SOURCE, "segmentSeconds": 600, "timeouts": {"segmentSeconds": 300}}
        )


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ({"type": "http"}, HTTP_REQUIRED),
        ({"type": "job", "http": {"url": "http://svc:8080"}}, HTTP_ONLY_FOR_HTTP),
        ({"type": "managed"}, MANAGED_REQUIRED),
        ({"managed": {"endpointName": "ep", "region": "us-east-1"}}, MANAGED_ONLY_FOR_MANAGED),
        ({"type": "stub"}, STUB_REQUIRES_COPY),
        ({"type": "stub", "engine": "builtin"}, STUB_REQUIRES_COPY),
    ],
)
def test_backend_settings_must_match_the_type(backend: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BackendSpec.model_validate(backend)


def test_valid_backends() -> None:
    http = BackendSpec.model_validate({"type": "http", "http": {"url": "https://svc/infer"}})
    assert http.http is not None and http.http.timeout_seconds == 600
    managed = BackendSpec.model_validate(
        {"type": "managed", "managed": {"endpointName": "stereo", "region": "us-east-1"}}
    )
    assert managed.managed is not None and managed.managed.failure_topic is None
    stub = BackendSpec(type=BackendType.STUB, engine=Engine.COPY)
    assert stub.to_wire() == {"type": "stub", "engine": "copy"}


def test_immutable_changes() -> None:
    old = VideoJobSpec(source=SOURCE)
    assert immutable_changes(old, old.model_copy(update={"parallelism": 9})) == []
    changed = old.model_copy(
        update={"source": "s3://media/other.mp4", "format": OutputFormat.VR180}
    )
    assert immutable_changes(old, changed) == [SOURCE_IMMUTABLE, FORMAT_IMMUTABLE]


def test_output_uri_resolution() -> None:
    job = VideoJobRef("ns", "movie", UID)
    spec = VideoJobSpec.model_validate({"source": SOURCE, "encoding": {"container": "mkv"}})
    assert resolve_output_uri(spec, job, "s3://work/root") == (
        f"s3://work/root/ns/movie/{UID}/final.mkv"
    )
    in_workspace = spec.model_copy(update={"workspace": "gs://other"})
    assert (
        resolve_output_uri(in_workspace, job, "s3://work") == f"gs://other/ns/movie/{UID}/final.mkv"
    )
    explicit = VideoJobSpec.model_validate({"source": SOURCE, "output": {"uri": "s3://out/m.mp4"}})
    assert resolve_output_uri(explicit, job, "s3://work") == "s3://out/m.mp4"


def test_status_defaults_and_tolerance() -> None:
    status = VideoJobStatus.model_validate({"kopf": {"progress": {}}, "segmentsTotal": 40})
    assert status.phase is VideoJobPhase.PENDING
    assert status.segments_total == 40 and status.conditions == []
    assert SegmentStatus.model_validate({}).phase is SegmentPhase.PENDING
    assert format_progress(12, 40) == "12/40"


def test_status_serializes_times_as_rfc3339() -> None:
    status = VideoJobStatus(phase=VideoJobPhase.RUNNING, start_time=T0, progress="0/4")
    assert status.to_wire() == {
        "phase": "Running",
        "segmentsTotal": 0,
        "segmentsCompleted": 0,
        "segmentsRunning": 0,
        "segmentsFailed": 0,
        "retries": 0,
        "progress": "0/4",
        "startTime": "2025-01-01T12:00:00Z",
        "conditions": [],
    }
    with pytest.raises(ValidationError, match="timezone"):
        VideoJobStatus.model_validate({"startTime": "2025-01-01T12:00:00"})


def make_segment(**overrides: Any) -> SegmentSpec:
    fields: dict[str, Any] = {
        "videoJob": "movie",
        "videoJobUid": UID,
        "index": 3,
        "inputUri": f"s3://w/ns/movie/{UID}/segments/00003/input.mp4",
        "outputUri": f"s3://w/ns/movie/{UID}/segments/00003/output.mp4",
        "startFrame": 21600,
        "frameCount": 7200,
        "startSeconds": 900.0,
        "durationSeconds": 300.0,
        **overrides,
    }
    return SegmentSpec.model_validate(fields)


def test_segment_spec_round_trip() -> None:
    segment = make_segment(format="half-tb", backend={"type": "stub", "engine": "copy"})
    wire = segment.to_wire()
    assert wire["videoJobUid"] == UID and wire["format"] == "half-tb"
    assert SegmentSpec.model_validate(wire) == segment


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"videoJob": "m" * 41}, ("videoJob",)),
        ({"videoJob": "Movie"}, ("videoJob",)),
        ({"videoJobUid": "a/b"}, ("videoJobUid",)),
        ({"index": 100_000}, ("index",)),
        ({"frameCount": 0}, ("frameCount",)),
        ({"durationSeconds": 0}, ("durationSeconds",)),
        ({"outputUri": "https://host/x.mp4"}, ("outputUri",)),
    ],
)
def test_segment_validation_names_the_field(
    overrides: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as error:
        make_segment(**overrides)
    assert location in error_locations(error.value)


def completion(**overrides: Any) -> SegmentCompletion:
    fields: dict[str, Any] = {
        "uri": "s3://w/ns/movie/uid/segments/00000/output.mp4",
        "size": 10,
        "eventTime": T0,
        "source": CompletionSource.SQS,
        "recordedAt": T0,
        **overrides,
    }
    return SegmentCompletion.model_validate(fields)


def test_first_completion_is_always_recorded() -> None:
    assert should_replace_completion(None, completion())


@pytest.mark.parametrize(
    ("current", "incoming", "replace"),
    [
        # GCS: generation decides, even against eventTime.
        ({"generation": 5}, {"generation": 6, "eventTime": T0 - timedelta(hours=1)}, True),
        ({"generation": 6}, {"generation": 5, "eventTime": T0 + timedelta(hours=1)}, False),
        ({"generation": 6}, {"generation": 6}, False),
        # S3: sequencers compare as strings after padding the shorter one on the right.
        ({"sequencer": "0055AED6DCD90281E5"}, {"sequencer": "0055AED6DCD90281E6"}, True),
        ({"sequencer": "0055AED6DCD90281E5"}, {"sequencer": "0055AED6DCD90281E50"}, False),
        ({"sequencer": "0055AED6DCD90281E5"}, {"sequencer": "0055AED6DCD90281E51"}, True),
        ({"sequencer": "FF"}, {"sequencer": "0100"}, False),
        ({"sequencer": "0100"}, {"sequencer": "FF"}, True),
        ({"sequencer": "ab"}, {"sequencer": "AB"}, False),
        (
            {"sequencer": "02", "eventTime": T0},
            {"sequencer": "01", "eventTime": T0 + timedelta(seconds=5)},
            False,
        ),
        # Otherwise eventTime, strictly newer.
        ({}, {"eventTime": T0 + timedelta(seconds=1)}, True),
        ({}, {"eventTime": T0}, False),
        ({}, {"eventTime": T0 - timedelta(seconds=1)}, False),
        ({"sequencer": "01"}, {"eventTime": T0 + timedelta(seconds=1)}, True),
        # Ordering keys of different objects are not comparable.
        (
            {"generation": 9},
            {"generation": 1, "uri": "s3://w/other.mp4", "eventTime": T0 + timedelta(seconds=1)},
            True,
        ),
    ],
)
def test_completion_replacement_is_monotonic(
    current: dict[str, Any], incoming: dict[str, Any], replace: bool
) -> None:
    assert should_replace_completion(completion(**current), completion(**incoming)) is replace


completions = st.builds(
    completion,
    generation=st.none() | st.integers(min_value=0, max_value=10),
    sequencer=st.none() | st.from_regex(r"[0-9A-Fa-f]{1,4}", fullmatch=True),
    eventTime=st.integers(min_value=0, max_value=10).map(lambda s: T0 + timedelta(seconds=s)),
)


@settings(deadline=None)
@given(a=completions, b=completions)
def test_completion_order_is_antisymmetric(a: SegmentCompletion, b: SegmentCompletion) -> None:
    assert compare_completions(a, b) == -compare_completions(b, a)
    assert not (should_replace_completion(a, b) and should_replace_completion(b, a))
    assert not should_replace_completion(a, a)


def test_etags_are_stored_unquoted() -> None:
    assert completion(etag='"d41d8cd98f00b204e9800998ecf8427e"').etag == (
        "d41d8cd98f00b204e9800998ecf8427e"
    )


def storage_event(**overrides: Any) -> StorageEvent:
    key = f"work/ns/movie/{UID}/segments/00004/output.mp4"
    fields: dict[str, Any] = {
        "kind": "created",
        "uri": f"s3://media/{key}",
        "bucket": "media",
        "key": key,
        "size": 1234,
        "etag": "abc",
        "sequencer": "0A",
        "eventTime": T0,
        "source": "minio-webhook",
        **overrides,
    }
    return StorageEvent.model_validate(fields)


def test_storage_event_to_completion() -> None:
    event = storage_event()
    recorded = event.to_completion(recorded_at=T0 + timedelta(seconds=2))
    assert recorded == SegmentCompletion(
        uri=event.uri,
        size=1234,
        etag="abc",
        sequencer="0A",
        event_time=T0,
        source=CompletionSource.MINIO_WEBHOOK,
        recorded_at=T0 + timedelta(seconds=2),
    )
    assert event.segment_ref("s3://media/work") == SegmentRef(
        VideoJobRef("ns", "movie", UID), 4, Container.MP4.value
    )
    assert event.segment_ref("s3://media/elsewhere") is None


def test_storage_event_consistency() -> None:
    with pytest.raises(ValidationError, match="does not match bucket"):
        storage_event(bucket="other")
    unrelated = storage_event(uri="s3://media/some file.txt", key="some file.txt")
    assert unrelated.segment_ref("s3://media") is None
    with pytest.raises(ValueError, match="deleted event"):
        storage_event(kind=StorageEventKind.DELETED).to_completion()


def test_set_condition_appends_and_replaces() -> None:
    conditions = set_condition([], "Ready", "False", "Splitting", "splitting", now=T0)
    conditions = set_condition(conditions, "Degraded", ConditionStatus.FALSE, "AsExpected", now=T0)
    assert [c.type for c in conditions] == ["Ready", "Degraded"]
    later = T0 + timedelta(minutes=5)

    same_status = set_condition(
        conditions, "Ready", "False", "Running", "3/40 done", observed_generation=2, now=later
    )
    ready = find_condition(same_status, "Ready")
    assert ready is not None
    assert (ready.reason, ready.message, ready.observed_generation) == ("Running", "3/40 done", 2)
    assert ready.last_transition_time == T0  # status unchanged: time kept
    assert [c.type for c in same_status] == ["Ready", "Degraded"]

    flipped = set_condition(same_status, "Ready", ConditionStatus.TRUE, "Succeeded", now=later)
    ready = find_condition(flipped, "Ready")
    assert ready is not None and ready.last_transition_time == later
    assert is_condition_true(flipped, "Ready") and not is_condition_true(flipped, "Degraded")
    assert not is_condition_true(flipped, "Missing")
    # The input list is never modified.
    assert find_condition(conditions, "Ready") == Condition(
        type="Ready",
        status=ConditionStatus.FALSE,
        reason="Splitting",
        message="splitting",
        last_transition_time=T0,
    )


def test_set_condition_validates_like_the_api_server() -> None:
    with pytest.raises(ValidationError) as error:
        set_condition([], "Ready", "True", "not camel case")
    assert ("reason",) in error_locations(error.value)
    with pytest.raises(ValueError):
        set_condition([], "Ready", "Maybe", "Reason")
    fresh = set_condition([], "Ready", "True", "Done")[0]
    assert fresh.last_transition_time.microsecond == 0
    assert fresh.to_wire()["lastTransitionTime"].endswith("Z")


@pytest.mark.parametrize(
    ("stereo", "engine", "pre_roll"),
    [
        ({}, "builtin", 21),  # Depth Anything's moving range needs 21 frames
        ({"depthModel": "Prior"}, "builtin", 0),
        ({"depthModel": "Any_V2_L"}, "iw3", 0),
        ({}, "copy", 0),
        ({"preRollFrames": 5}, "builtin", 5),
        ({"preRollFrames": 0}, "builtin", 0),
    ],
)
def test_the_default_pre_roll_follows_the_depth_model(
    stereo: dict[str, Any], engine: str, pre_roll: int
) -> None:
    spec = VideoJobSpec.model_validate(
        {"source": SOURCE, "stereo": stereo, "backend": {"type": "job", "engine": engine}}
    )
    assert pre_roll_frames(spec) == pre_roll
