"""The ``iw3`` engine: nagadomi/nunif's iw3, called in-process through its Python API.

iw3 is not on PyPI: an image that ships it has a nunif checkout on
``PYTHONPATH`` and its weights under ``NUNIF_HOME`` (``python -m
iw3.download_models`` and one warm-up conversion per configuration at build
time). Calls go the way iw3's own CLI and GUI make them: build the argument
namespace with iw3's parser, ``set_state_args(args, depth_model=...)``, then
``iw3_main(args)``. The depth model ``set_state_args`` creates is kept and
passed back on later calls, so one loaded model serves every segment. iw3_main
builds its stereo model (``--method``) anew on every call; the engine hands it
the one it built before instead (``_StereoModels``), so that too loads once.

The stereo method is a property of the image, not of a VideoJob: iw3's default
(``row_flow_v3``, a small net with weights), or ``$STEREO_IW3_METHOD`` (e.g. the
weight-free ``forward_fill`` that the tests use with depth model ``NULL``).

The translation of our settings into iw3's argument list is a pure function,
``iw3_arguments``. Choices it makes:

* always ``--yes`` (iw3 otherwise asks before overwriting and dies without stdin);
* ``--max-fps`` far above the source's rate (iw3 caps at 30 fps by default);
* no ``--start-time``/``--end-time`` (they seek by whole seconds): the segment's window
  is decoded losslessly into a local file first, inside the inference Job;
* iw3 writes an intermediate file (x264, crf ``INTERMEDIATE_CRF``, visually
  lossless); we then re-encode it with the job's codec, crf and preset, no
  B-frames and a constant rate from 0, dropping the pre-roll frames, because
  iw3's encoder uses B-frames and cannot drop frames by count. That is one
  extra, near-lossless generation.

Segments carry no audio, so iw3's audio handling never comes into play.

A source of more than 8 bits (10-bit HDR) stays 10-bit: iw3 is asked for
``yuv420p10le`` (it then computes in 16 bits), and the re-encode keeps it and
writes the source's colour tags and HDR10 metadata back.

VR180 frames are iw3's own: each view projected to a square equirectangular
image 1.5 times the source's longer side, not ``formats.output_size``'s 2w x h.

Of our settings, format, divergence, convergence and depth model reach iw3. iw3
has more that the VideoJob does not carry (so they stay at iw3's defaults): EMA
depth normalisation, scene detection, the anaglyph method (``dubois`` here) and
the stereo method (image-wide, see above).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from stereo_infer.engines.base import DEVICE_AUTO, EngineJob, EngineOptions
from stereo_infer.engines.formats import StereoFormat
from stereo_infer.errors import (
    BadInputError,
    EngineUnavailableError,
    MediaError,
    TransientError,
    UnknownEngineError,
)
from stereo_infer.ffmpeg import run_ffmpeg
from stereo_infer.progress import ProgressReporter
from stereo_infer.window import decode_to_file
from stereo_types.formats import DEFAULT_DEPTH_MODEL

DEFAULT_METHOD = "row_flow_v3"
METHOD_ENV = "STEREO_IW3_METHOD"
INTERMEDIATE_CRF = 10
INTERMEDIATE_PRESET = "veryfast"
# iw3 outputs min(source fps, --max-fps): keep it far above any real source.
MAX_FPS_FLOOR = 1000
NUNIF_HOME_ENV = "NUNIF_HOME"

FORMAT_FLAGS: dict[StereoFormat, tuple[str, ...]] = {
    StereoFormat.FULL_SBS: (),  # iw3's default
    StereoFormat.HALF_SBS: ("--half-sbs",),
    StereoFormat.FULL_TB: ("--tb",),
    StereoFormat.HALF_TB: ("--half-tb",),
    StereoFormat.ANAGLYPH: ("--anaglyph", "dubois"),
    StereoFormat.CROSS_EYED: ("--cross-eyed",),
    StereoFormat.VR180: ("--vr180",),
}


@dataclass(frozen=True)
class Iw3Call:
    """Everything ``iw3_arguments`` needs, none of it read from the environment."""

    input_path: str
    output_path: str
    stereo_format: StereoFormat
    divergence: float
    convergence: float
    depth_model: str
    source_fps: Fraction
    # iw3's --gpu: a CUDA device index, -1 for the CPU.
    gpu: int = 0
    method: str = DEFAULT_METHOD
    batch_size: int | None = None
    # iw3's --pix-fmt: 10 bits (iw3 then works in 16) for a source of more than 8.
    pix_fmt: str = "yuv420p"


def iw3_arguments(call: Iw3Call) -> list[str]:
    """iw3's command-line arguments for one segment (pure: no I/O, no imports)."""
    max_fps = max(MAX_FPS_FLOOR, math.ceil(call.source_fps) + 1)
    args = [
        "--input",
        call.input_path,
        "--output",
        call.output_path,
        "--yes",
        "--depth-model",
        call.depth_model,
        "--method",
        call.method,
        "--divergence",
        _number(call.divergence),
        "--convergence",
        _number(call.convergence),
        "--max-fps",
        str(max_fps),
        "--gpu",
        str(call.gpu),
        "--video-codec",
        "libx264",
        "--crf",
        str(INTERMEDIATE_CRF),
        "--preset",
        INTERMEDIATE_PRESET,
        "--pix-fmt",
        call.pix_fmt,
    ]
    if call.batch_size is not None:
        args += ["--batch-size", str(call.batch_size)]
    args += FORMAT_FLAGS[call.stereo_format]
    return args


def gpu_index(device: str, cuda_available: bool) -> int:
    """Our device option as iw3's ``--gpu`` index."""
    if device == "cpu":
        return -1
    if device.startswith("cuda:"):
        return int(device[5:])
    if device == "cuda":
        return 0
    assert device == DEVICE_AUTO, device
    return 0 if cuda_available else -1


def _number(value: float) -> str:
    return repr(float(value))


def iw3_installed() -> bool:
    try:
        return importlib.util.find_spec("iw3") is not None
    except (ImportError, ValueError):
        return False


def require_iw3() -> None:
    """Refuse, without importing iw3, an image that cannot run it: iw3 or its weights missing."""
    if not iw3_installed():
        raise EngineUnavailableError(
            "engine 'iw3' is not available in this image: iw3 is not installed in this image"
            " (no nunif checkout on PYTHONPATH); use an image built with nunif, or --engine builtin"
        )
    home = os.environ.get(NUNIF_HOME_ENV)
    if not home or not Path(home).is_dir():
        raise EngineUnavailableError(
            f"engine 'iw3' needs {NUNIF_HOME_ENV} to name the directory holding its weights"
            f" (got {home!r}); this image never downloads weights"
        )


@dataclass(frozen=True)
class _Api:
    # iw3.utils: iw3_main looks create_stereo_model up there on every call.
    utils: Any
    create_parser: Any
    set_state_args: Any
    iw3_main: Any
    create_stereo_model: Any


def _load_api() -> _Api:
    try:
        utils = importlib.import_module("iw3.utils")
    except ImportError as exc:
        raise UnknownEngineError(f"iw3 is installed but cannot be imported: {exc}") from exc
    return _Api(
        utils,
        utils.create_parser,
        utils.set_state_args,
        utils.iw3_main,
        utils.create_stereo_model,
    )


class _StereoModels:
    """iw3's ``create_stereo_model``, building each distinct model once.

    Keyed by every argument iw3_main passes (the mlbw models differ by divergence);
    the weight-free methods build ``None``, which is cached like any other model.
    """

    def __init__(self, build: Any) -> None:
        self._build = build
        self._models: dict[tuple[object, ...], Any] = {}

    def __call__(self, method: str, **kwargs: Any) -> Any:
        key = (method, *sorted(kwargs.items()))
        if key not in self._models:
            self._models[key] = self._build(method, **kwargs)
        return self._models[key]


@contextmanager
def _stereo_models_in(utils: Any, models: _StereoModels) -> Iterator[None]:
    """Let iw3_main take its stereo model from ``models`` for the duration of one call."""
    original = utils.create_stereo_model
    utils.create_stereo_model = models
    try:
        yield
    finally:
        utils.create_stereo_model = original


# One iw3_main at a time per process: iw3 keeps per-run state on the shared models, and
# the stereo model hook above is a module global.
_IW3_LOCK = threading.Lock()


class _ProgressBar:
    """What iw3 expects from ``tqdm_fn(desc=, total=, ncols=)``, feeding our reporter."""

    def __init__(self, reporter: ProgressReporter | None, **_: object) -> None:
        self.reporter = reporter
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.reporter is not None:
            self.reporter.update(self.n)

    def close(self) -> None:
        pass

    def set_description(self, *_: object, **__: object) -> None:
        pass

    def set_postfix(self, *_: object, **__: object) -> None:
        pass


class Iw3Engine:
    name = "iw3"

    def __init__(self, options: EngineOptions | None = None, method: str | None = None) -> None:
        self.options = options or EngineOptions()
        # Checked before the import: iw3 fixes its model directory when imported.
        require_iw3()
        # iw3 fetches missing weights from a model hub: make that fail fast.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.api = _load_api()
        self.method = method or os.environ.get(METHOD_ENV) or DEFAULT_METHOD
        self._check_choice("--method", self.method, f"iw3 has no stereo method {self.method!r}")
        self._models: dict[str, Any] = {}
        self._stereo_models = _StereoModels(self.api.create_stereo_model)

    def _gpu(self) -> int:
        cuda = False
        if self.options.device == DEVICE_AUTO:
            import torch

            cuda = torch.cuda.is_available()
        return gpu_index(self.options.device, cuda)

    def _parse(self, argv: list[str]) -> Any:
        parser = self.api.create_parser()
        try:
            return parser.parse_args(argv)
        except SystemExit:
            raise BadInputError(f"iw3 rejected the arguments: {' '.join(argv)}") from None

    def _choices(self, option: str) -> list[str] | None:
        parser = self.api.create_parser()
        for action in parser._actions:
            if option in action.option_strings and action.choices:
                return list(action.choices)
        return None

    def _check_choice(self, option: str, value: str, message: str) -> None:
        known = self._choices(option)
        if known is not None and value not in known:
            raise BadInputError(f"{message}; it knows: {', '.join(sorted(known))}")

    def known_depth_models(self) -> list[str] | None:
        return self._choices("--depth-model")

    def prepare(self, stereo_format: StereoFormat, depth_model: str | None) -> None:
        if stereo_format not in FORMAT_FLAGS:
            raise BadInputError(f"iw3 cannot make {stereo_format.value}")
        name = depth_model or DEFAULT_DEPTH_MODEL
        self._check_choice("--depth-model", name, f"iw3 has no depth model {name!r}")
        with _IW3_LOCK:
            if name not in self._models:
                self._models[name] = self._load_model(name)

    def _load_model(self, name: str) -> Any:
        """Create and load ``name`` once, the way iw3_main would on its first call."""
        gpu = str(self._gpu())
        args = self._parse(
            ["--input", "in.mp4", "--output", "out.mp4", "--depth-model", name, "--gpu", gpu]
        )
        self.api.set_state_args(args)
        model = args.state["depth_model"]
        loaded = getattr(model, "loaded", None)
        if callable(loaded) and not loaded():
            model.load(
                gpu=args.gpu,
                resolution=getattr(args, "resolution", None),
                limit_resolution=getattr(args, "limit_resolution", False),
            )
        return model

    def convert(self, job: EngineJob, progress: ProgressReporter | None = None) -> None:
        name = job.depth_model or DEFAULT_DEPTH_MODEL
        self.prepare(job.stereo_format, name)
        with tempfile.TemporaryDirectory(prefix="iw3-", dir=job.output_path.parent) as tmp:
            # iw3 reads a file: the window, pre-roll included, decoded losslessly beside it.
            window = Path(tmp) / "window.mp4"
            decode_to_file(job.input, window, drop_pre_roll=False)
            intermediate = Path(tmp) / "iw3.mp4"
            call = self._call(job, name, window, intermediate)
            self._run(self._parse(iw3_arguments(call)), name, progress)
            if not intermediate.is_file():
                raise MediaError(f"iw3 finished without writing {intermediate.name}")
            _reencode(intermediate, job)

    def _call(self, job: EngineJob, depth_model: str, window: Path, output: Path) -> Iw3Call:
        return Iw3Call(
            input_path=str(window),
            output_path=str(output),
            stereo_format=job.stereo_format,
            divergence=job.divergence,
            convergence=job.convergence,
            depth_model=depth_model,
            source_fps=job.input.rate.fraction,
            gpu=self._gpu(),
            method=self.method,
            batch_size=self.options.batch_size,
            pix_fmt="yuv420p10le" if job.input.video.bit_depth > 8 else "yuv420p",
        )

    def _run(self, args: Any, depth_model: str, progress: ProgressReporter | None) -> None:
        """One iw3_main call with the loaded depth model and the cached stereo model."""
        with _IW3_LOCK, _stereo_models_in(self.api.utils, self._stereo_models):
            self.api.set_state_args(
                args,
                depth_model=self._models[depth_model],
                tqdm_fn=lambda **kw: _ProgressBar(progress, **kw),
            )
            try:
                self.api.iw3_main(args)
            except Exception as exc:
                raise _classify(exc) from exc


def _reencode(intermediate: Path, job: EngineJob) -> None:
    """iw3's file in the job's encoding: pre-roll dropped, no B-frames, a constant rate from 0."""
    rate = job.input.rate
    trim = f"trim=start_frame={job.input.pre_roll},setpts=N/({rate}*TB)"
    run_ffmpeg(
        [
            "-i",
            str(intermediate),
            "-map",
            "0:v:0",
            "-vf",
            trim,
            *job.encoding.args(rate, job.input.video),
            str(job.output_path),
        ]
    )


def _classify(exc: Exception) -> Exception:
    if type(exc).__name__ in ("OutOfMemoryError", "MemoryError"):
        return TransientError(f"iw3 ran out of memory: {exc}")
    return MediaError(f"iw3 failed: {type(exc).__name__}: {exc}")
