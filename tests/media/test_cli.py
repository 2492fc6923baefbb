"""The stereo-infer command: exit codes and the split -> convert -> assemble flow."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from stereo_infer import exitcodes, split
from stereo_infer.cli import main
from stereo_infer.io import local_path
from stereo_infer.probe import probe
from stereo_types import layout
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.plan import SplitPlan, plan_uri

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
    split = ["split", "--input", missing, "--output-dir", str(tmp_path / "segs")]
    split += ["--segment-seconds", "1", "--plan-out", str(tmp_path / "plan.json")]
    assert main(split) == exitcodes.BAD_INPUT
    assert not (tmp_path / "plan.json").exists()


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
    assert "unknown output format 'hologram'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--format", "half-sbs", "--engine", "nope"],
        ["--format", "half-sbs", "--engine", "iw3"],
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
    args = ["convert", "--input", str(src_mp4), "--output", str(tmp_path / "o.mp4"), *extra]
    assert main(args) == exitcodes.BAD_INPUT
    assert not (tmp_path / "o.mp4").exists()


def test_unsupported_uri_scheme(tmp_path: Path) -> None:
    assert main(["probe", "--input", "http://example.invalid/a.mp4"]) == exitcodes.BAD_INPUT


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == exitcodes.OK
    assert "split" in capsys.readouterr().out


def _operator_convert_args(seg: dict[str, object]) -> list[str]:
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
        "--pre-roll",
        str(seg["preRollFrames"]),
        "--codec",
        "h264",
        "--crf",
        "20",
        "--preset",
        "medium",
    ]


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_split_with_the_layout_then_convert_and_assemble(
    src_mp4: Path, tmp_path: Path, hashes: Callable[[Path], list[str]]
) -> None:
    workspace = tmp_path / "ws"
    root = StorageRoot.parse(workspace.as_uri())
    ref = VideoJobRef("media", "clip", UID)
    split_args = ["split", "--input", src_mp4.as_uri(), "--workspace", root.uri]
    split_args += ["--namespace", ref.namespace, "--videojob", ref.name, "--uid", ref.uid]
    split_args += ["--segment-seconds", "0.7", "--pre-roll", "5"]
    assert main(["--no-progress", *split_args]) == exitcodes.OK

    # Exactly the layout's names: segment inputs, the audio next to audio.mka, the plan.
    job = f"media/clip/{UID}"
    inputs = {f"{job}/segments/{i:05d}/input.mp4" for i in range(3)}
    assert _files_under(workspace) == {*inputs, f"{job}/audio.m4a", f"{job}/plan.json"}
    raw = json.loads(local_path(plan_uri(root, ref)).read_text())
    assert {"fpsNum", "segmentFrames", "preRollFrames"} <= raw.keys()
    plan = SplitPlan.model_validate(raw)
    assert plan.source == src_mp4.as_uri()
    assert (plan.fps_num, plan.fps_den, plan.frame_count) == (30, 1, 60)
    assert (plan.segment_frames, plan.pre_roll_frames, plan.segment_codec) == (21, 5, "h264")
    for i, seg in enumerate(plan.segments):
        assert seg.index == i
        assert seg.input_uri == layout.segment_input_uri(root, ref, i, "mp4")
        assert seg.output_uri == layout.segment_output_uri(root, ref, i, "mp4")
        assert seg.pre_roll_frames == (0 if i == 0 else 5)
    assert [seg.frame_count for seg in plan.segments] == [21, 21, 18]
    assert plan.audio is not None and plan.audio.codec == "aac"
    assert plan.audio.uri == root.uri_for(*ref.parts(), "audio.m4a")

    for seg in raw["segments"]:
        assert main(["--no-progress", *_operator_convert_args(seg)]) == exitcodes.OK
    outputs = {f"{job}/segments/{i:05d}/output.mp4" for i in range(3)}
    assert outputs <= _files_under(workspace)

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


def test_split_publishes_the_plan_last(
    src_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[str] = []
    publish = split.publish_output

    def recording(local: Path, uri: str) -> None:
        publish(local, uri)
        published.append(uri)

    monkeypatch.setattr(split, "publish_output", recording)
    root = StorageRoot.parse((tmp_path / "ws").as_uri())
    ref = VideoJobRef("media", "clip", UID)
    args = ["--no-progress", "split", "--input", str(src_mp4), "--workspace", root.uri]
    args += ["--namespace", "media", "--videojob", "clip", "--uid", UID, "--segment-seconds", "1"]
    assert main(args) == exitcodes.OK
    assert published[-1] == plan_uri(root, ref)
    assert len(published) == 4  # two segments, the audio, the plan


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
        (["--output-dir", "segs", "--preset", "warp"], "unknown preset 'warp'"),
    ],
)
def test_split_rejects_bad_requests(
    src_mp4: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["split", "--input", str(src_mp4), "--segment-seconds", "1", *extra]
    assert main(args) == exitcodes.BAD_INPUT
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_split_convert_assemble_in_one_folder(
    src_mp4: Path,
    tmp_path: Path,
    hashes: Callable[[Path], list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    segments = tmp_path / "segments"
    plan_file = tmp_path / "plan.json"
    split = ["split", "--input", src_mp4.as_uri(), "--output-dir", str(segments)]
    split += ["--segment-seconds", "0.7", "--pre-roll", "5", "--plan-out", str(plan_file)]
    assert main(split) == exitcodes.OK
    assert "frames" in capsys.readouterr().err  # progress lines
    assert _files_under(segments) == {f"{i:05d}/input.mp4" for i in range(3)} | {"audio.m4a"}
    plan = SplitPlan.model_validate_json(plan_file.read_text())
    assert [seg.output_uri for seg in plan.segments] == [
        (segments / f"{i:05d}" / "output.mp4").as_uri() for i in range(3)
    ]

    for seg in plan.segments:
        convert = ["convert", "--input", seg.input_uri, "--output", seg.output_uri]
        convert += ["--format", "full-sbs", "--pre-roll", str(seg.pre_roll_frames)]
        assert main(["--no-progress", *convert]) == exitcodes.OK

    for name in ("out.mp4", "out.mkv"):
        out = tmp_path / "final" / name
        assemble = ["assemble", "--plan", plan_file.as_uri(), "--output", out.as_uri()]
        assert main(["--no-progress", *assemble]) == exitcodes.OK
        assert hashes(out) == hashes(src_mp4)
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == ["out.mkv", "out.mp4"]
    assert not [p for p in segments.rglob(".*")]


def test_plan_defaults_to_the_output_dir(src_mp4: Path, tmp_path: Path) -> None:
    split = ["split", "--input", str(src_mp4), "--output-dir", (tmp_path / "segs").as_uri()]
    assert main(["--no-progress", *split, "--segment-seconds", "5"]) == exitcodes.OK
    plan = SplitPlan.model_validate_json((tmp_path / "segs" / "plan.json").read_text())
    assert plan.segments[0].input_uri == (tmp_path / "segs" / "00000" / "input.mp4").as_uri()


def test_assemble_with_missing_segment_is_bad_input(src_mp4: Path, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    split = ["split", "--input", str(src_mp4), "--output-dir", str(tmp_path / "segs")]
    split += ["--segment-seconds", "1", "--plan-out", str(plan_file)]
    assert main(["--no-progress", *split]) == exitcodes.OK
    # Nothing converted: the outputs the plan names do not exist.
    assemble = ["assemble", "--plan", str(plan_file), "--output", str(tmp_path / "o.mp4")]
    assert main(assemble) == exitcodes.BAD_INPUT
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
    # A real process, so the signal reaches the CLI while it works.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    split = ["split", "--input", str(src_mp4), "--output-dir", str(tmp_path / "segs")]
    split += ["--segment-seconds", "0.1", "--plan-out", str(tmp_path / "plan.json")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stereo_infer", *split],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    # The first progress line: ffmpeg is running or the segments are being counted.
    seen = [proc.stderr.readline()]
    proc.send_signal(signal.SIGTERM)
    seen.append(proc.stderr.read())
    proc.wait(timeout=30)
    err = "".join(seen)
    assert "[split]" in seen[0], err
    # A fast machine may have finished anyway; otherwise the exit says "retry".
    assert proc.returncode in (exitcodes.TEMPFAIL, exitcodes.OK), err
    if proc.returncode == exitcodes.TEMPFAIL:
        assert "terminated by signal" in err
        assert not (tmp_path / "plan.json").exists()
