"""The iw3 adapter: the pure argument translation, and the in-process call flow.

nunif is never installed in CI; the call-flow test puts a stand-in ``iw3``
package on ``sys.path`` that has iw3's API shape (``create_parser``,
``set_state_args``, ``iw3_main``) and writes its output with ffmpeg.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from stereo_infer import exitcodes
from stereo_infer.cli import main
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import EngineJob, EngineOptions, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.engines.iw3 import (
    FORMAT_FLAGS,
    Iw3Call,
    Iw3Engine,
    gpu_index,
    iw3_arguments,
    iw3_installed,
)
from stereo_infer.errors import BadInputError, UnknownEngineError
from stereo_infer.probe import probe
from stereo_infer.window import SegmentInput
from tests.engines.videos import packets, stream_info


def call(**changes: object) -> Iw3Call:
    values: dict[str, object] = {
        "input_path": "/work/in.mp4",
        "output_path": "/work/out.mp4",
        "stereo_format": StereoFormat.FULL_SBS,
        "divergence": 2.5,
        "convergence": 0.3,
        "depth_model": "Any_V2_S",
        "source_fps": Fraction(30000, 1001),
    }
    values.update(changes)
    return Iw3Call(**values)  # type: ignore[arg-type]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_settings_translate_to_iw3_options() -> None:
    args = iw3_arguments(call())
    assert option(args, "--input") == "/work/in.mp4"
    assert option(args, "--output") == "/work/out.mp4"
    assert option(args, "--depth-model") == "Any_V2_S"
    assert option(args, "--divergence") == "2.5"
    assert option(args, "--convergence") == "0.3"
    assert option(args, "--gpu") == "0"
    assert "--yes" in args  # never the interactive overwrite prompt
    assert "--batch-size" not in args  # iw3's own default
    for absent in ("--start-time", "--end-time", "--half-sbs", "--tb", "--vr180", "--anaglyph"):
        assert absent not in args


@pytest.mark.parametrize(
    ("fmt", "flags"),
    [
        (StereoFormat.FULL_SBS, []),
        (StereoFormat.HALF_SBS, ["--half-sbs"]),
        (StereoFormat.FULL_TB, ["--tb"]),
        (StereoFormat.HALF_TB, ["--half-tb"]),
        (StereoFormat.ANAGLYPH, ["--anaglyph", "dubois"]),
        (StereoFormat.CROSS_EYED, ["--cross-eyed"]),
        (StereoFormat.VR180, ["--vr180"]),
    ],
)
def test_every_format_maps_to_its_flag(fmt: StereoFormat, flags: list[str]) -> None:
    args = iw3_arguments(call(stereo_format=fmt))
    layout = {"--half-sbs", "--tb", "--half-tb", "--anaglyph", "--cross-eyed", "--vr180"}
    assert [a for a in args if a in layout or a == "dubois"] == flags


def test_every_format_has_a_mapping() -> None:
    assert set(FORMAT_FLAGS) == set(StereoFormat)


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(60), Fraction(240)])
def test_frame_rate_is_never_capped(fps: Fraction) -> None:
    max_fps = float(option(iw3_arguments(call(source_fps=fps)), "--max-fps"))
    assert max_fps > fps and max_fps >= 1000


def test_device_and_batch_options() -> None:
    args = iw3_arguments(call(gpu=-1, batch_size=4))
    assert option(args, "--gpu") == "-1" and option(args, "--batch-size") == "4"
    assert gpu_index("cpu", True) == -1
    assert gpu_index("cuda:2", False) == 2
    assert gpu_index("cuda", False) == 0
    assert gpu_index("auto", True) == 0 and gpu_index("auto", False) == -1


def test_translation_is_pure() -> None:
    assert iw3_arguments(call()) == iw3_arguments(call())


@pytest.mark.skipif(iw3_installed(), reason="nunif is installed here")
def test_missing_iw3_is_a_clear_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownEngineError, match="iw3 is not installed in this image") as info:
        get_engine("iw3")
    assert info.value.exit_code == exitcodes.BAD_INPUT
    args = ["convert", "--input", "x.mp4", "--output", "y.mp4", "--format", "half-sbs"]
    assert main([*args, "--engine", "iw3"]) == exitcodes.BAD_INPUT
    assert "iw3 is not installed in this image" in capsys.readouterr().err


# A stand-in with iw3's API shape. Its parser declares the options the adapter
# uses, with iw3's names, defaults and choices; iw3_main writes the packed
# output with ffmpeg (B-frames on, as iw3's encoder does) and logs the call.
FAKE_UTILS = textwrap.dedent(
    """
    import argparse, json, os, subprocess

    LOADS = []
    CALLS = []

    class FakeDepthModel:
        def __init__(self, name):
            self.name = name
            self._loaded = False
            LOADS.append(name)
        def loaded(self):
            return self._loaded
        def load(self, gpu, resolution=None, limit_resolution=False):
            self._loaded = True

    def create_parser(required_true=True):
        p = argparse.ArgumentParser()
        p.add_argument("--input", "-i", required=required_true)
        p.add_argument("--output", "-o", required=required_true)
        p.add_argument("--gpu", "-g", type=int, nargs="+", default=[-1])
        p.add_argument("--divergence", "-d", type=float, default=2.0)
        p.add_argument("--convergence", "-c", type=float, default=0.5)
        p.add_argument("--max-fps", type=float, default=30)
        p.add_argument("--batch-size", type=int, default=2)
        p.add_argument("--crf", type=int, default=20)
        p.add_argument("--preset", default="medium")
        p.add_argument("--video-codec", "-vc", default=None)
        p.add_argument("--pix-fmt", default="yuv420p")
        p.add_argument("--yes", "-y", action="store_true", default=False)
        p.add_argument("--depth-model", default="ZoeD_Any_N",
                       choices=["ZoeD_N", "ZoeD_Any_N", "Any_S", "Any_V2_S", "NULL"])
        p.add_argument("--resolution", type=int)
        p.add_argument("--limit-resolution", action="store_true")
        p.add_argument("--vr180", action="store_true")
        p.add_argument("--half-sbs", action="store_true")
        p.add_argument("--tb", action="store_true")
        p.add_argument("--half-tb", action="store_true")
        p.add_argument("--anaglyph", nargs="?", default=None, const="dubois",
                       choices=["color", "gray", "dubois"])
        p.add_argument("--cross-eyed", action="store_true")
        return p

    def set_state_args(args, stop_event=None, tqdm_fn=None, depth_model=None,
                       suspend_event=None):
        if depth_model is None:
            depth_model = FakeDepthModel(args.depth_model)
        args.state = {"depth_model": depth_model, "tqdm_fn": tqdm_fn,
                      "stop_event": stop_event}
        return args

    def iw3_main(args):
        assert args.yes, "iw3 would prompt"
        model = args.state["depth_model"]
        if not model.loaded():
            model.load(gpu=args.gpu)
        CALLS.append({"argv": vars(args).copy(), "model": id(model)})
        bar = args.state["tqdm_fn"](desc="Frames", total=1, ncols=80)
        graph = "[0:v]split[l][r];[l][r]hstack"
        if args.half_sbs:
            graph += ",scale=iw/2:ih"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", args.input,
             "-filter_complex", graph, "-c:v", args.video_codec, "-crf", str(args.crf),
             "-preset", args.preset, "-bf", "3", "-pix_fmt", args.pix_fmt, args.output],
            check=True)
        bar.update(1)
        bar.close()
        return args
    """
)


@pytest.fixture
def fake_iw3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    package = tmp_path / "nunif" / "iw3"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "utils.py").write_text(FAKE_UTILS)
    home = tmp_path / "nunif-home"
    home.mkdir()
    monkeypatch.setenv("NUNIF_HOME", str(home))
    # The engine sets it for iw3; through monkeypatch it is restored afterwards.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.syspath_prepend(str(tmp_path / "nunif"))
    import importlib

    importlib.invalidate_caches()
    utils = importlib.import_module("iw3.utils")
    yield utils
    for name in ("iw3.utils", "iw3"):
        sys.modules.pop(name, None)


def test_iw3_in_process_reuses_one_model_across_segments(
    fake_iw3: object, tiny_clip: Path, tmp_path: Path
) -> None:
    engine = get_engine("iw3", EngineOptions(device="cpu", batch_size=3))
    assert isinstance(engine, Iw3Engine)
    engine.prepare(StereoFormat.HALF_SBS, "Any_V2_S")  # the server's start: loads once
    info = probe(tiny_clip)
    outputs = []
    for i, pre_roll in enumerate((0, 4)):
        out = tmp_path / f"seg{i}.mp4"
        engine.convert(
            EngineJob(
                input=SegmentInput(str(tiny_clip), info.video, pre_roll_frames=pre_roll),
                output_path=out,
                stereo_format=StereoFormat.HALF_SBS,
                divergence=3.0,
                convergence=0.25,
                encoding=VideoEncoding(crf=23, preset="ultrafast"),
                depth_model="Any_V2_S",
            )
        )
        outputs.append(out)
    loads: list[str] = fake_iw3.LOADS  # type: ignore[attr-defined]
    calls: list[dict[str, object]] = fake_iw3.CALLS  # type: ignore[attr-defined]
    assert loads == ["Any_V2_S"]
    assert len(calls) == 2 and calls[0]["model"] == calls[1]["model"]
    argv = calls[0]["argv"]
    assert isinstance(argv, dict)
    assert argv["half_sbs"] and argv["yes"] and argv["gpu"] == [-1] and argv["batch_size"] == 3
    assert argv["divergence"] == 3.0 and argv["convergence"] == 0.25
    assert argv["max_fps"] >= 1000
    # Our re-encode: B-frames gone, pre-roll dropped, exact frame grid.
    for out, frames in zip(outputs, (12, 8), strict=True):
        info_out = stream_info(out)
        assert (info_out["width"], info_out["height"]) == (160, 90)
        assert info_out["has_b_frames"] == 0
        stamps = packets(out)
        assert len(stamps) == frames and all(pts == dts for pts, dts in stamps)
    # No intermediate files left next to the output.
    assert sorted(p.name for p in tmp_path.glob("seg*")) == ["seg0.mp4", "seg1.mp4"]


def test_iw3_refuses_a_depth_model_it_does_not_know(fake_iw3: object) -> None:
    engine = get_engine("iw3", EngineOptions(device="cpu"))
    with pytest.raises(BadInputError, match="iw3 has no depth model 'Prior'"):
        engine.prepare(StereoFormat.FULL_SBS, "Prior")


def test_iw3_needs_nunif_home(fake_iw3: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUNIF_HOME")
    with pytest.raises(UnknownEngineError, match="NUNIF_HOME"):
        get_engine("iw3")
