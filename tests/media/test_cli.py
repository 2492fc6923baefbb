"""The stereo-infer command: exit codes and the plan -> convert -> assemble flow."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stereo_infer import exitcodes, planner
from stereo_infer.cli import main
from stereo_infer.io import local_path
from stereo_infer.probe import probe
from stereo_types import layout
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.plan import SplitPlan, plan_uri
from stereo_types.seams import DepthTrace, SeamScore
from tests.media.pipeline import Hashes, convert_segments, plan_local

UID = "0b6f3c1e-8a4d-4c1e-9a53-2f0e6c1d7b42"


def test_exit_codes_are_distinct() -> None:
    codes = [exitcodes.OK, exitcodes.BAD_INPUT, exitcodes.SOFTWARE, exitcodes.TEMPFAIL]
    assert len(set(codes)) == len(codes)
    assert exitcodes.BAD_INPUT in exitcodes.NEVER_RETRY
    assert exitcodes.TEMPFAIL in exitcodes.RETRY


def test_probe_prints_json(src_mp4: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--input", src_mp4.as_uri()]) == exitcodes.OK
    info = json.loads(capsys.readouterr().out)
    assert info["video"]["frame_count"] == 60
    assert info["audio"]["codec"] == "aac"


@pytest.mark.parametrize("fixture", ["audio_only", "garbage"])
def test_probe_bad_input(
    fixture: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    path: Path = request.getfixturevalue(fixture)
    assert main(["probe", "--input", str(path)]) == exitcodes.BAD_INPUT
    assert "error:" in capsys.readouterr().err


def test_missing_input_is_bad_input(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.mp4")
    assert main(["probe", "--input", missing]) == exitcodes.BAD_INPUT
    plan = ["plan", "--input", missing, "--output-dir", str(tmp_path / "segs")]
    plan += ["--segment-seconds", "1", "--plan-out", str(tmp_path / "plan.json")]
    assert main(plan) == exitcodes.BAD_INPUT
    assert not (tmp_path / "plan.json").exists()
    assert not (tmp_path / "segs").exists()
    convert = ["convert", "--input", missing, "--output", str(tmp_path / "o.mp4")]
    assert main([*convert, "--format", "half-sbs", "--engine", "copy"]) == exitcodes.BAD_INPUT
    assert not (tmp_path / "o.mp4").exists()


def test_unknown_format_fails_before_reading_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "convert",
        "--input",
        str(tmp_path / "missing.mp4"),
        "--output",
        str(tmp_path / "o.mp4"),
    ]
    assert main([*args, "--format", "hologram"]) == exitcodes.BAD_INPUT
    assert "argument --format: must be one of full-sbs," in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--format", "half-sbs", "--engine", "nope"],
        # (An engine this environment lacks, iw3, exits MODEL_UNAVAILABLE: test_iw3.py.)
        ["--format", "half-sbs", "--convergence", "2"],
        ["--format", "half-sbs", "--pre-roll", "-1"],
        ["--format", "half-sbs", "--pre-roll", "600"],
        ["--format", "half-sbs", "--divergence", "lots"],
        ["--format", "half-sbs", "--codec", "vp9"],
        ["--format", "half-sbs", "--crf", "52"],
        ["--format", "half-sbs", "--crf", "-1"],
        ["--format", "half-sbs", "--preset", "warp"],
        ["--format", "half-sbs", "--depth-model", "../model"],
        ["--format", "half-sbs", "--depth-model", ""],
        [],  # --format missing
    ],
)
def test_convert_rejects_bad_requests(src_mp4: Path, tmp_path: Path, extra: list[str]) -> None:
    args = ["convert", "--input", str(src_mp4), "--output", str(tmp_path / "o.mp4")]
    assert main([*args, "--engine", "copy", *extra]) == exitcodes.BAD_INPUT
    assert not (tmp_path / "o.mp4").exists()


def _window_json(source: Path, tmp_path: Path, **changes: object) -> str:
    """The wire JSON of the second window of a plan of ``source``, with ``changes``."""
    seg = plan_local(source, tmp_path / "planned", 0.5).segments[1]
    return json.dumps({**seg.window.to_wire(), **changes})


@pytest.mark.parametrize(
    ("window", "extra", "message"),
    [
        ("not json", [], "--window is not a valid window"),
        ('{"firstPts": 0}', [], "--window is not a valid window"),
        ({"frameCount": 0}, [], "--window is not a valid window"),
        ({}, ["--pre-roll", "3"], "--pre-roll goes without --window"),
        ({"streamIndex": 1}, [], "the window names stream 1, but the source's video is stream 0"),
    ],
)
def test_convert_rejects_bad_windows(
    src_mp4: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    window: str | dict[str, object],
    extra: list[str],
    message: str,
) -> None:
    text = window if isinstance(window, str) else _window_json(src_mp4, tmp_path, **window)
    out = tmp_path / "o.mp4"
    args = ["convert", "--input", str(src_mp4), "--output", str(out), "--format", "half-sbs"]
    args += ["--engine", "copy", "--window", text, *extra]
    assert main(["--no-progress", *args]) == exitcodes.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_convert_one_window_by_hand(
    src_mp4: Path, tmp_path: Path, hashes: Hashes, capsys: pytest.CaptureFixture[str]
) -> None:
    """`convert --window` with the JSON either way pydantic writes it: the window's frames."""
    planned = plan_local(src_mp4, tmp_path / "planned", 0.5, pre_roll=4)
    seg = planned.segments[2]
    source = hashes(src_mp4)
    for i, text in enumerate(
        [seg.window.model_dump_json(by_alias=True), json.dumps(seg.window.to_wire())]
    ):
        out = tmp_path / f"window-{i}.mp4"
        args = ["convert", "--input", src_mp4.as_uri(), "--output", out.as_uri()]
        args += ["--format", "half-sbs", "--engine", "copy", "--window", text]
        assert main(args) == exitcodes.OK
        assert "frames" in capsys.readouterr().err  # progress lines
        assert hashes(out) == source[seg.start_frame : seg.start_frame + seg.frame_count]


def test_convert_a_whole_file_dropping_its_pre_roll(
    src_mp4: Path, tmp_path: Path, hashes: Hashes
) -> None:
    out = tmp_path / "whole.mp4"
    args = ["--no-progress", "convert", "--input", str(src_mp4), "--output", str(out)]
    args += ["--format", "half-sbs", "--engine", "copy", "--pre-roll", "7"]
    assert main(args) == exitcodes.OK
    assert hashes(out) == hashes(src_mp4)[7:]


def test_unsupported_uri_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--input", "ftp://example.invalid/a.mp4"]) == exitcodes.BAD_INPUT
    assert "unsupported URI scheme 'ftp'" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "plan" in out
    assert "split" not in out
    assert main(["plan", "--help"]) == exitcodes.OK
    out = capsys.readouterr().out
    assert "--pre-roll" in out and "--crf" not in out


def _operator_convert_args(seg: dict[str, Any]) -> list[str]:
    """What the operator's inference Job runs for one plan segment (VideoJob defaults)."""
    return [
        "convert",
        "--input",
        str(seg["inputUri"]),
        "--output",
        str(seg["outputUri"]),
        "--format",
        "half-sbs",
        "--divergence",
        "2.0",
        "--convergence",
        "0.5",
        "--depth-model",
        "Any_V2_S",
        "--engine",
        "copy",
        "--window",
        json.dumps(seg["window"], separators=(",", ":")),
        "--codec",
        "h264",
        "--crf",
        "20",
        "--preset",
        "medium",
    ]


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_plan_with_the_layout_then_convert_and_assemble(
    src_mp4: Path, tmp_path: Path, hashes: Hashes
) -> None:
    workspace = tmp_path / "ws"
    root = StorageRoot.parse(workspace.as_uri())
    ref = VideoJobRef("media", "clip", UID)
    plan_args = ["plan", "--input", src_mp4.as_uri(), "--workspace", root.uri]
    plan_args += ["--namespace", ref.namespace, "--videojob", ref.name, "--uid", ref.uid]
    plan_args += ["--segment-seconds", "0.7", "--pre-roll", "5"]
    assert main(["--no-progress", *plan_args]) == exitcodes.OK

    # The plan is all the planning step writes: no segment inputs, no audio file.
    job = f"media/clip/{UID}"
    assert _files_under(workspace) == {f"{job}/plan.json"}
    raw = json.loads(local_path(plan_uri(root, ref)).read_text())
    assert {"fpsNum", "segmentFrames", "preRollFrames", "keyframes", "leadFrames"} <= raw.keys()
    assert {"firstPts", "lastPts", "timeBaseDen"} <= raw["segments"][1]["window"].keys()
    plan = SplitPlan.model_validate(raw)
    assert plan.source == src_mp4.as_uri()
    assert plan.source_bytes == src_mp4.stat().st_size
    assert (plan.fps_num, plan.fps_den, plan.frame_count) == (30, 1, 60)
    assert (plan.segment_frames, plan.pre_roll_frames) == (21, 5)
    for i, seg in enumerate(plan.segments):
        assert seg.index == i
        assert seg.input_uri == src_mp4.as_uri()
        assert seg.output_uri == layout.segment_output_uri(root, ref, i, "mp4")
        assert seg.pre_roll_frames == seg.window.pre_roll_frames == (0 if i == 0 else 5)
    assert [seg.frame_count for seg in plan.segments] == [21, 21, 18]
    assert plan.audio is not None and plan.audio.codec == "aac"
    assert (plan.audio.uri, plan.audio.stream_index) == (src_mp4.as_uri(), 1)

    for seg in raw["segments"]:
        assert main(["--no-progress", *_operator_convert_args(seg)]) == exitcodes.OK
    outputs = {f"{job}/segments/{i:05d}/output.mp4" for i in range(3)}
    assert _files_under(workspace) == {f"{job}/plan.json", *outputs}

    final = layout.final_output_uri(root, ref, "mp4")
    assemble = ["assemble", "--plan", plan_uri(root, ref), "--output", final]
    assert main(["--no-progress", *assemble, "--container", "mp4"]) == exitcodes.OK
    result = local_path(final)
    assert hashes(result) == hashes(src_mp4)
    source_audio, audio = probe(src_mp4).audio, probe(result).audio
    assert source_audio is not None and audio is not None
    assert source_audio.duration_seconds is not None
    assert audio.duration_seconds == pytest.approx(source_audio.duration_seconds, abs=1 / 30)
    assert not [name for name in _files_under(workspace) if "/." in f"/{name}"]


def test_plan_publishes_only_the_plan(
    src_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[str] = []
    publish = planner.publish_output

    def recording(local: Path, uri: str) -> None:
        publish(local, uri)
        published.append(uri)

    monkeypatch.setattr(planner, "publish_output", recording)
    root = StorageRoot.parse((tmp_path / "ws").as_uri())
    ref = VideoJobRef("media", "clip", UID)
    args = ["--no-progress", "plan", "--input", str(src_mp4), "--workspace", root.uri]
    args += ["--namespace", "media", "--videojob", "clip", "--uid", UID, "--segment-seconds", "1"]
    assert main(args) == exitcodes.OK
    assert published == [plan_uri(root, ref)]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "needs --workspace, --namespace, --videojob and --uid, or --output-dir"),
        (["--workspace", "file:///ws", "--uid", UID], "also needs --namespace, --videojob"),
        (["--output-dir", "segs", "--uid", UID], "cannot be combined with --uid"),
        (
            ["--workspace", "ftp://host/ws", "--namespace", "a", "--videojob", "b", "--uid", UID],
            "unsupported scheme 'ftp'",
        ),
        (
            ["--workspace", "file:///ws", "--namespace", "A_B", "--videojob", "b", "--uid", UID],
            "namespace 'A_B' is not a DNS-1123 label",
        ),
        (
            ["--workspace", "file:///ws", "--namespace", "a", "--videojob", "b", "--uid", "x/y"],
            "is not a valid UID",
        ),
        (
            [
                *("--workspace", "file:///ws", "--namespace", "a", "--videojob", "b"),
                *("--uid", UID, "--plan-out", "plan.json"),
            ],
            "--plan-out goes with --output-dir",
        ),
        (["--output-dir", "http://host/segs"], "cannot write segments to"),
        (
            ["--output-dir", "segs", "--pre-roll", "-1"],
            "argument --pre-roll: must be an integer >= 0 and <= 120, not '-1'",
        ),
        # Encoder settings went with the segment files.
        (["--output-dir", "segs", "--crf", "18"], "unrecognized arguments: --crf 18"),
        (["--output-dir", "segs", "--preset", "fast"], "unrecognized arguments: --preset"),
    ],
)
def test_plan_rejects_bad_requests(
    src_mp4: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["plan", "--input", str(src_mp4), "--segment-seconds", "1", *extra]
    assert main(args) == exitcodes.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("fixture", "seconds", "message"),
    [
        ("src_mp4", "0", "segment length must be a positive number of seconds"),
        ("src_mp4", "nan", "segment length must be a positive number of seconds"),
        ("audio_only", "1", "no video stream"),
        ("garbage", "1", "error:"),
    ],
)
def test_plan_bad_input(
    fixture: str,
    seconds: str,
    message: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path: Path = request.getfixturevalue(fixture)
    args = ["plan", "--input", str(path), "--segment-seconds", seconds]
    assert main([*args, "--output-dir", str(tmp_path / "segs")]) == exitcodes.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "segs").exists()


def test_plan_convert_assemble_in_one_folder(
    src_mp4: Path,
    tmp_path: Path,
    hashes: Hashes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    segments = tmp_path / "segments"
    plan_file = tmp_path / "plan.json"
    plan = ["plan", "--input", src_mp4.as_uri(), "--output-dir", str(segments)]
    plan += ["--segment-seconds", "0.7", "--pre-roll", "5", "--plan-out", str(plan_file)]
    assert main(plan) == exitcodes.OK
    err = capsys.readouterr().err
    assert "planned 60 frames in 3 segments of 21 frames at 30/1 fps" in err
    assert not segments.exists()  # nothing but the plan, and it went to --plan-out
    planned = SplitPlan.model_validate_json(plan_file.read_text())
    assert [seg.output_uri for seg in planned.segments] == [
        (segments / f"{i:05d}" / "output.mp4").as_uri() for i in range(3)
    ]

    for seg in planned.segments:
        convert = ["convert", "--input", seg.input_uri, "--output", seg.output_uri]
        convert += ["--format", "full-sbs", "--engine", "copy"]
        convert += ["--window", seg.window.model_dump_json(by_alias=True)]
        assert main(["--no-progress", *convert]) == exitcodes.OK
    assert _files_under(segments) == {f"{i:05d}/output.mp4" for i in range(3)}

    for name in ("out.mp4", "out.mkv"):
        out = tmp_path / "final" / name
        assemble = ["assemble", "--plan", plan_file.as_uri(), "--output", out.as_uri()]
        assert main(["--no-progress", *assemble]) == exitcodes.OK
        assert hashes(out) == hashes(src_mp4)
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == ["out.mkv", "out.mp4"]
    assert not [p for p in segments.rglob(".*")]


def test_assemble_scores_the_seams_from_the_depth_traces(
    src_mp4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segments = tmp_path / "segments"
    plan = ["plan", "--input", src_mp4.as_uri(), "--output-dir", str(segments)]
    assert main([*plan, "--segment-seconds", "1"]) == exitcodes.OK
    planned = SplitPlan.model_validate_json((segments / "plan.json").read_text())
    for seg in planned.segments:
        convert = ["convert", "--input", seg.input_uri, "--output", seg.output_uri]
        convert += ["--format", "half-sbs", "--engine", "builtin", "--depth-model", "Prior"]
        convert += ["--window", seg.window.model_dump_json(by_alias=True)]
        assert main(["--no-progress", *convert]) == exitcodes.OK
    # Beside each output, first: the mean nearness of each of its frames.
    traces = [DepthTrace.model_validate_json(p.read_text()) for p in segments.rglob("*.depth.json")]
    assert [len(t.means) for t in traces] == [30, 30]
    final = tmp_path / "final.mp4"
    assemble = ["assemble", "--plan", (segments / "plan.json").as_uri(), "--output", str(final)]
    assert main(["--no-progress", *assemble]) == exitcodes.OK
    score = SeamScore.model_validate_json((segments / "seams.json").read_text())
    assert (score.seams, score.worst_segment) == (1, 1)
    assert f"seam score {score.score} (worst at segment 1" in capsys.readouterr().err


def test_plan_defaults_to_the_output_dir(src_mp4: Path, tmp_path: Path) -> None:
    plan = ["plan", "--input", str(src_mp4), "--output-dir", (tmp_path / "segs").as_uri()]
    assert main(["--no-progress", *plan, "--segment-seconds", "5"]) == exitcodes.OK
    assert _files_under(tmp_path) == {"segs/plan.json"}
    planned = SplitPlan.model_validate_json((tmp_path / "segs" / "plan.json").read_text())
    # A plain path is named as a file:// URI.
    assert planned.segments[0].input_uri == src_mp4.resolve().as_uri()
    assert planned.segments[0].output_uri == (tmp_path / "segs" / "00000" / "output.mp4").as_uri()


def test_assemble_with_missing_segment_is_bad_input(src_mp4: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan = ["plan", "--input", str(src_mp4), "--output-dir", str(tmp_path / "segs")]
    plan += ["--segment-seconds", "1", "--plan-out", str(plan_file)]
    assert main(["--no-progress", *plan]) == exitcodes.OK
    # Nothing converted: the outputs the plan names do not exist.
    assemble = ["assemble", "--plan", str(plan_file), "--output", str(tmp_path / "o.mp4")]
    assert main(assemble) == exitcodes.BAD_INPUT
    assert not (tmp_path / "o.mp4").exists()


def test_assemble_with_the_source_gone_is_bad_input(
    src_mp4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "source.mp4"
    source.write_bytes(src_mp4.read_bytes())
    plan_file = tmp_path / "plan.json"
    plan = ["plan", "--input", str(source), "--output-dir", str(tmp_path / "segs")]
    plan += ["--segment-seconds", "5", "--plan-out", str(plan_file)]
    assert main(["--no-progress", *plan]) == exitcodes.OK
    planned = SplitPlan.model_validate_json(plan_file.read_text())
    convert_segments(planned)
    # The audio is read from the source at assembly: a source deleted since is a clear error.
    source.unlink()
    assemble = ["assemble", "--plan", str(plan_file), "--output", str(tmp_path / "o.mp4")]
    assert main(assemble) == exitcodes.BAD_INPUT
    assert "input not found" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("content", ["not json", '{"segments": []}'])
def test_assemble_with_a_bad_plan_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(content)
    assemble = ["assemble", "--plan", str(plan_file), "--output", str(tmp_path / "o.mp4")]
    assert main(assemble) == exitcodes.BAD_INPUT
    assert "not a valid split plan" in capsys.readouterr().err


def test_sigterm_exits_tempfail(src_mp4: Path, tmp_path: Path) -> None:
    # A real process, so the signal reaches the CLI while it works: a conversion of the
    # whole source, which reports progress as it goes.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "o.mp4"
    convert = ["convert", "--input", str(src_mp4), "--output", str(out), "--format", "half-sbs"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stereo_infer", *convert, "--engine", "copy"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    # The first progress line: ffmpeg is running.
    seen = [proc.stderr.readline()]
    proc.send_signal(signal.SIGTERM)
    seen.append(proc.stderr.read())
    proc.wait(timeout=30)
    err = "".join(seen)
    assert "[copy]" in seen[0], err
    # A fast machine may have finished anyway; otherwise the exit says "retry".
    assert proc.returncode in (exitcodes.TEMPFAIL, exitcodes.OK), err
    if proc.returncode == exitcodes.TEMPFAIL:
        assert "terminated by signal" in err
        assert not out.exists()
