"""``stereo-infer``: the command the operator's Jobs run.

    stereo-infer probe    --input PATH_OR_URI
    stereo-infer plan     --input PATH_OR_URI --segment-seconds N [--pre-roll K]
                          [--engine E [--depth-model M]]
                          (--workspace ROOT_URI --namespace NS --videojob NAME --uid UID
                           | --output-dir DIR_OR_PREFIX [--plan-out FILE_OR_URI])
    stereo-infer convert  --input URI --output URI --format F [--engine copy|builtin|iw3]
                          [--window JSON | --pre-roll K]
                          [--divergence D] [--convergence C] [--depth-model M]
                          [--codec h264|hevc] [--crf N] [--preset P]
                          [--encoder software|nvenc]
                          [--device auto|cpu|cuda[:N]] [--batch-size N]
    stereo-infer assemble --plan PLAN_URI --output FINAL_URI [--container mp4|mkv]
    stereo-infer serve    [--host H] [--port 8080] [--engine E] [--depth-model M]
                          [--format F] [--concurrency N] [--device D] [--batch-size N]
    stereo-infer preview  SOURCE --at SECONDS --out PNG [--depth-model M]
                          [--divergence D] [--convergence C] [--device D]
    stereo-infer capabilities

``serve`` runs the HTTP inference server (``stereo_infer.server``): ``GET /ping``
and ``POST /invocations``, SageMaker compatible.

``plan`` reads the source's packet index (no picture is decoded, nothing but the plan is
written) and writes the plan (JSON, ``stereo_types.plan.SplitPlan``): each segment's window
of the source and its output URI. ``convert --window`` converts one window, read straight
from the source; without it, the whole input. With ``--workspace`` all names follow
``stereo_types.layout``; with ``--output-dir`` segment i's output is
``DIR/<i:05d>/output.mp4`` and the plan ``DIR/plan.json`` unless ``--plan-out`` says
otherwise. ``assemble`` joins the outputs the plan names and muxes the source's audio.

Paths may be local paths or file://, s3:// and gs:// URIs; inputs also http:// and https://
URLs (``stereo_infer.httpsource``). Exit codes are in ``stereo_infer.exitcodes``.

``capabilities`` prints, as JSON, the engines and depth models this image can run
(``stereo_infer.capabilities``). ``plan --engine E --depth-model M`` checks the request
against them before it reads the source: one the image lacks exits ``MODEL_UNAVAILABLE``.
"""

import argparse
import json
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from pydantic import ValidationError

from stereo_infer import exitcodes
from stereo_infer.assemble import assemble, check_plan, container_for
from stereo_infer.capabilities import capabilities, check_request
from stereo_infer.conversion import ConversionRequest, convert
from stereo_infer.depth_traces import score_seams
from stereo_infer.encoding import VideoEncoding
from stereo_infer.engines import ENGINE_NAMES, EngineOptions, available_engines, get_engine
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import (
    BadInputError,
    StereoInferError,
    TransientError,
    UnknownEngineError,
)
from stereo_infer.io import fetch_input, is_local, local_path, publish_output
from stereo_infer.planner import plan_source, read_plan
from stereo_infer.probe import probe
from stereo_infer.source import open_source
from stereo_infer.targets import LayoutTargets, LocalTargets, PlanTargets
from stereo_types.backend import DEFAULT_ENGINE, BatchSize, EngineChoice
from stereo_types.base import SettingError, check_setting
from stereo_types.formats import (
    DEFAULT_CODEC,
    DEFAULT_CONVERGENCE,
    DEFAULT_CRF,
    DEFAULT_DIVERGENCE,
    DEFAULT_ENCODER,
    DEFAULT_FORMAT,
    DEFAULT_PRE_ROLL_FRAMES,
    DEFAULT_PRESET,
    CodecChoice,
    Container,
    ContainerChoice,
    Convergence,
    Crf,
    DepthModel,
    Divergence,
    Encoder,
    EncoderChoice,
    EncoderPreset,
    FormatChoice,
    PreRollFrames,
    PresetChoice,
    VideoCodec,
)
from stereo_types.layout import StorageRoot, VideoJobRef
from stereo_types.plan import SourceWindow
from stereo_types.refusals import refusal_line


class UsageError(BadInputError):
    """Bad command-line arguments: as permanent as bad media."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _setting(kind: Any) -> Callable[[str], Any]:
    """An option type checking the setting's shared rule (as the VideoJob and the server do);
    argparse puts the option's name before the rule's message."""

    def parse(text: str) -> Any:
        try:
            return check_setting(kind, text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stereo-infer", description="Convert 2D video to stereo 3D.")
    parser.add_argument(
        "--no-progress", action="store_true", help="do not print progress lines on stderr"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("probe", help="describe a video as JSON")
    p.add_argument("--input", required=True)
    p.set_defaults(handler=cmd_probe)

    p = commands.add_parser(
        "plan", help="plan frame-exact segments from the source's packet index (no decode)"
    )
    p.add_argument("--input", required=True)
    p.add_argument("--segment-seconds", required=True, type=float, metavar="N")
    p.add_argument(
        "--pre-roll",
        type=_setting(PreRollFrames),
        default=DEFAULT_PRE_ROLL_FRAMES,
        metavar="K",
        help="warm-up frames before each segment",
    )
    _add_container_arg(p, "the final output's; a source track it cannot hold fails the plan")
    p.add_argument(
        "--engine",
        type=_setting(EngineChoice),
        help="the engine the segments will run: refused at once if this image lacks it",
    )
    _add_depth_model_arg(p, "with --engine: refused at once if this image lacks it")
    layout = p.add_argument_group("storage layout (what the operator passes)")
    layout.add_argument(
        "--workspace", metavar="ROOT_URI", help="workspace root URI: s3://, gs:// or file:///"
    )
    layout.add_argument("--namespace", metavar="NS", help="the VideoJob's namespace")
    layout.add_argument("--videojob", metavar="NAME", help="the VideoJob's name")
    layout.add_argument("--uid", metavar="UID", help="the VideoJob's UID")
    local = p.add_argument_group("one folder (instead of the layout)")
    local.add_argument(
        "--output-dir", metavar="DIR", help="folder or URI prefix for segments, audio and plan"
    )
    local.add_argument("--plan-out", metavar="FILE", help="default DIR/plan.json")
    p.set_defaults(handler=cmd_plan)

    p = commands.add_parser(
        "capabilities", help="the engines and depth models this image can run, as JSON"
    )
    p.set_defaults(handler=cmd_capabilities)

    p = commands.add_parser("convert", help="convert one segment (or a whole video) to stereo")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    _add_format_arg(p, required=True)
    _add_engine_arg(p)
    _add_stereo_args(p)
    p.add_argument(
        "--window",
        metavar="JSON",
        help="the segment's window of the source, as in the plan; default: every frame",
    )
    p.add_argument(
        "--pre-roll",
        type=_setting(PreRollFrames),
        default=DEFAULT_PRE_ROLL_FRAMES,
        metavar="K",
        help="without --window: leading frames to drop on output",
    )
    _add_encoding_args(p)
    _add_engine_args(p)
    p.set_defaults(handler=cmd_convert)

    p = commands.add_parser("assemble", help="join the converted segments a plan names")
    p.add_argument("--plan", required=True, metavar="PLAN_URI", help="the plan split wrote")
    p.add_argument("--output", required=True, metavar="FINAL_URI")
    _add_container_arg(p, "default: from the --output extension")
    _add_format_arg(
        p, "the segments', written into the output for players; default: none", default=None
    )
    p.set_defaults(handler=cmd_assemble)

    p = commands.add_parser("serve", help="run the HTTP inference server (SageMaker compatible)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on")
    p.add_argument("--port", type=int, default=8080)
    _add_engine_arg(p)
    _add_depth_model_arg(p, "loaded at start; default: the engine's")
    _add_format_arg(p, "checked at start; requests may ask for any")
    p.add_argument(
        "--concurrency", type=int, default=1, help="conversions at once (one per GPU by default)"
    )
    _add_engine_args(p)
    p.set_defaults(handler=cmd_serve)

    p = commands.add_parser(
        "preview", help="write a PNG of one frame: left and right views and the depth map"
    )
    p.add_argument("source", metavar="SOURCE", help="the video: a path or URI")
    p.add_argument("--at", required=True, type=float, metavar="SECONDS", help="time of the frame")
    p.add_argument("--out", required=True, metavar="PNG", help="where the PNG goes: path or URI")
    _add_stereo_args(p)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]")
    p.set_defaults(handler=cmd_preview)
    return parser


# The settings a VideoJob has too take its rules and defaults (stereo_types.formats, .backend).
def _add_format_arg(
    p: argparse.ArgumentParser,
    note: str = "",
    *,
    required: bool = False,
    default: StereoFormat | None = DEFAULT_FORMAT,
) -> None:
    choices = "|".join(f.value for f in StereoFormat)
    p.add_argument(
        "--format",
        type=_setting(FormatChoice),
        required=required,
        default=None if required else default,
        help=f"{choices}; {note}" if note else choices,
    )


def _add_engine_arg(p: argparse.ArgumentParser) -> None:
    engines = "|".join(ENGINE_NAMES)
    p.add_argument("--engine", type=_setting(EngineChoice), default=DEFAULT_ENGINE, help=engines)


def _add_depth_model_arg(p: argparse.ArgumentParser, note: str) -> None:
    p.add_argument("--depth-model", type=_setting(DepthModel), help=note)


def _add_stereo_args(p: argparse.ArgumentParser) -> None:
    _add_depth_model_arg(p, "depth-estimation model; default: the engine's")
    p.add_argument("--divergence", type=_setting(Divergence), default=DEFAULT_DIVERGENCE)
    p.add_argument("--convergence", type=_setting(Convergence), default=DEFAULT_CONVERGENCE)


def _add_container_arg(p: argparse.ArgumentParser, note: str) -> None:
    containers = "|".join(c.value for c in Container)
    p.add_argument("--container", type=_setting(ContainerChoice), help=f"{containers}; {note}")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--batch-size", type=_setting(BatchSize), help="frames per forward pass; default per device"
    )


def _engine_options(args: argparse.Namespace) -> EngineOptions:
    try:
        return EngineOptions(device=args.device, batch_size=args.batch_size)
    except BadInputError as exc:
        raise UsageError(str(exc)) from None


def _add_encoding_args(p: argparse.ArgumentParser) -> None:
    codecs = "|".join(c.value for c in VideoCodec)
    presets = "|".join(p.value for p in EncoderPreset)
    p.add_argument("--codec", type=_setting(CodecChoice), default=DEFAULT_CODEC, help=codecs)
    p.add_argument("--crf", type=_setting(Crf), default=DEFAULT_CRF, help="constant rate factor")
    p.add_argument("--preset", type=_setting(PresetChoice), default=DEFAULT_PRESET, help=presets)
    encoders = "|".join(e.value for e in Encoder)
    p.add_argument(
        "--encoder", type=_setting(EncoderChoice), default=DEFAULT_ENCODER, help=encoders
    )


def _encoding(args: argparse.Namespace) -> VideoEncoding:
    encoding = VideoEncoding(
        codec=args.codec.value, crf=args.crf, preset=args.preset.value, encoder=args.encoder.value
    )
    return encoding.available()


def main(argv: Sequence[str] | None = None) -> int:
    with _sigterm_as_tempfail():
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else exitcodes.OK
    except StereoInferError as exc:
        print(_error_line(exc), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # Disk full, I/O errors, permission flaps on volumes: worth a retry.
        print(f"stereo-infer: error: {exc}", file=sys.stderr)
        return exitcodes.TEMPFAIL
    except Exception:
        traceback.print_exc()
        return exitcodes.SOFTWARE


def _error_line(exc: StereoInferError) -> str:
    """The error line; one the operator must tell apart names its reason (stereo_types.refusals)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return refusal_line(reason, str(exc))
    return f"stereo-infer: error: {exc}"


@contextmanager
def _sigterm_as_tempfail() -> Iterator[None]:
    """Turn SIGTERM (eviction, node drain) into a TransientError.

    The exception unwinds through the ffmpeg runner, which kills its child,
    and through the temp directories, which clean up; the pod then exits
    TEMPFAIL instead of dying mid-write.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, _frame: FrameType | None) -> None:
        raise TransientError(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_probe(args: argparse.Namespace) -> int:
    with open_source(args.input) as source:
        info = probe(source.url)
        print(info.model_dump_json(indent=2))
    return exitcodes.OK


def cmd_capabilities(args: argparse.Namespace) -> int:
    print(json.dumps(capabilities(), indent=2))
    return exitcodes.OK


def cmd_plan(args: argparse.Namespace) -> int:
    # Cheap checks first: a bad request fails before the source is read.
    targets = _plan_targets(args)
    if args.engine is not None:
        check_request(args.engine, args.depth_model)
    elif args.depth_model is not None:
        raise UsageError("--depth-model goes with --engine: the model is the engine's")
    plan = plan_source(
        args.input, targets, args.segment_seconds, pre_roll=args.pre_roll, container=args.container
    )
    print(
        f"planned {plan.frame_count} frames in {len(plan.segments)} segments"
        f" of {plan.segment_frames} frames at {plan.fps_num}/{plan.fps_den} fps"
        f" ({plan.keyframes} keyframes, {plan.lead_frames} frames decoded only to reach"
        f" a segment's start); plan: {targets.plan}",
        file=sys.stderr,
    )
    return exitcodes.OK


_LAYOUT_OPTIONS = ("workspace", "namespace", "videojob", "uid")


def _plan_targets(args: argparse.Namespace) -> PlanTargets:
    """The layout's names (--workspace ...) or one folder's (--output-dir), never both."""
    given = [f"--{name}" for name in _LAYOUT_OPTIONS if getattr(args, name) is not None]
    if args.output_dir is not None:
        if given:
            raise UsageError(f"--output-dir cannot be combined with {', '.join(given)}")
        return LocalTargets.under(args.output_dir, args.plan_out)
    if not given:
        raise UsageError(
            "plan needs --workspace, --namespace, --videojob and --uid, or --output-dir"
        )
    missing = [f"--{name}" for name in _LAYOUT_OPTIONS if getattr(args, name) is None]
    if missing:
        raise UsageError(f"plan with {', '.join(given)} also needs {', '.join(missing)}")
    if args.plan_out is not None:
        raise UsageError("--plan-out goes with --output-dir; the layout names the plan")
    try:
        root = StorageRoot.parse(args.workspace)
        ref = VideoJobRef(args.namespace, args.videojob, args.uid)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return LayoutTargets(root, ref)


def cmd_convert(args: argparse.Namespace) -> int:
    # Cheap checks first (the options' rules ran as they were parsed): a bad request fails
    # before the source is read.
    engine = get_engine(args.engine, _engine_options(args))
    request = ConversionRequest(
        input_uri=args.input,
        output_uri=args.output,
        stereo_format=args.format,
        divergence=args.divergence,
        convergence=args.convergence,
        encoding=_encoding(args),
        depth_model=args.depth_model,
        window=_window(args),
        pre_roll_frames=args.pre_roll,
    )
    # Refuses a format or model the engine cannot make, and loads the model.
    engine.prepare(args.format, args.depth_model)
    convert(engine, request, device=args.device, show_progress=not args.no_progress)
    return exitcodes.OK


def _window(args: argparse.Namespace) -> SourceWindow | None:
    if args.window is None:
        return None
    if args.pre_roll:
        raise UsageError("--pre-roll goes without --window; a window carries its own")
    try:
        return SourceWindow.model_validate_json(args.window)
    except ValidationError as exc:
        raise UsageError(f"--window is not a valid window: {exc}") from None


def cmd_assemble(args: argparse.Namespace) -> int:
    name = args.output.rstrip("/").rsplit("/", 1)[-1]
    kind = container_for(Path(name), args.container)
    with tempfile.TemporaryDirectory(prefix="stereo-assemble-") as tmp:
        work = Path(tmp)
        plan = read_plan(fetch_input(args.plan, work / "plan"))
        check_plan(plan)
        # One folder each: every output has the same file name in the layout.
        segment_files = [
            fetch_input(seg.output_uri, work / "segments" / f"{seg.index:05d}")
            for seg in plan.segments
        ]
        # A local output is renamed into place by assemble itself.
        target = local_path(args.output) if is_local(args.output) else work / f"output.{kind}"
        # The other tracks are stream-copied straight from the source (range reads).
        with open_source(plan.source) as source:
            result = assemble(
                plan,
                segment_files,
                target,
                source=source.url,
                container=kind,
                stereo_format=args.format,
                show_progress=not args.no_progress,
            )
        # Before the output, so the score is there when the operator sees the output.
        seams = score_seams(plan, args.plan, work / "traces")
        if not is_local(args.output):
            publish_output(result.output, args.output)
    print(
        f"assembled {result.frame_count} frames from {result.segments} segments into {args.output}",
        file=sys.stderr,
    )
    if seams is not None:
        print(
            f"seam score {seams.score} (worst at segment {seams.worst_segment}; median"
            f" {seams.median_score} over {seams.seams} seams)",
            file=sys.stderr,
        )
    return exitcodes.OK


def cmd_serve(args: argparse.Namespace) -> int:
    from stereo_infer.server import ServerConfig, serve

    if not 1 <= args.concurrency <= 64:
        raise UsageError(f"--concurrency must be within 1..64: {args.concurrency}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be within 0..65535: {args.port}")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        engine=args.engine,
        engine_options=_engine_options(args),
        depth_model=args.depth_model,
        stereo_format=args.format,
        concurrency=args.concurrency,
        show_progress=not args.no_progress,
    )
    serve(config)
    return exitcodes.OK


def cmd_preview(args: argparse.Namespace) -> int:
    if "builtin" not in available_engines():
        raise UnknownEngineError(
            "preview runs the builtin engine, which needs torch: not installed (pip install torch)"
        )
    from stereo_infer.preview import PreviewSettings, make_preview

    settings = PreviewSettings(args.at, args.divergence, args.convergence, args.depth_model)
    try:
        options = EngineOptions(device=args.device)
    except BadInputError as exc:
        raise UsageError(str(exc)) from None
    result = make_preview(args.source, args.out, settings, options)
    width, height = result.layout.size
    print(
        f"preview of {args.source} (frame {result.frame_index}, depth model"
        f" {result.depth_model}) written to {args.out} ({width}x{height})",
        file=sys.stderr,
    )
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
