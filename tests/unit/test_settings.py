"""One rule per conversion setting, wherever it is read.

Every reader of a setting refuses the same values, accepts the same values and, when the
setting is left out, uses the same default: the VideoJob CRD (as the API server checks and
defaults it), the operator (its VideoJob model, then the arguments of its Jobs and the
requests of its http and managed backends, as `stereo-infer` and the server parse them),
`stereo-infer`'s options, the inference server's requests (body and SageMaker header), the
preview, the engine options and stereoctl. Each refusal but the API server's (whose words are
Kubernetes') names the setting, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from stereo_infer.cli import build_parser
from stereo_infer.engines import ENGINE_NAMES, EngineOptions
from stereo_infer.errors import BadInputError
from stereo_infer.invocation import RequestError, build_request
from stereo_operator import jobs
from stereo_operator.backends.invocation import invocation_document
from stereo_operator.segments import segment_spec
from stereo_types.backend import Engine
from stereo_types.formats import (
    DEPTH_ANYTHING_WARM_UP_FRAMES,
    Container,
    Encoder,
    EncoderPreset,
    OutputFormat,
    VideoCodec,
)
from stereo_types.segment import SegmentSpec
from stereo_types.videojob import VideoJobSpec
from stereoctl.errors import InputError
from stereoctl.manifest import SubmitOptions, build_spec
from tests.crds import apply_defaults, node_at, root_schema
from tests.operator.factories import CONFIG, REF, ROOT, plan

SOURCE = "s3://media/in/movie.mp4"
OUTPUT = "s3://media/out/movie.mp4"

Path = tuple[str, ...]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# The setting left out; a reader whose default is the setting's own; a reader that needs the
# setting given. (A reader whose default is None leaves the choice to the engine or server.)
OMITTED: Any = _Marker("OMITTED")
SAME: Any = _Marker("SAME")
REQUIRED: Any = _Marker("REQUIRED")


class CrdRefusal(Exception):
    """What the API server would refuse, in jsonschema's words."""


REFUSALS = (CrdRefusal, ValidationError, BadInputError, RequestError, InputError)


@dataclass(frozen=True)
class Reader:
    where: str
    read: Callable[[Any], Any]
    # How the reader's refusals name the setting; None: not checked (Kubernetes' message).
    named: str | None
    default: Any = SAME


@dataclass(frozen=True)
class Setting:
    name: str
    allowed: str
    accepted: tuple[Any, ...]
    refused: tuple[Any, ...]
    default: Any
    readers: tuple[Reader, ...]


def nest(path: Path, value: Any) -> dict[str, Any]:
    if value is OMITTED:
        return {}
    for key in reversed(path):
        value = {key: value}
    return dict(value)


def dig(document: Any, path: Path) -> Any:
    for key in path:
        document = document[key]
    return document


def text(value: Any) -> str:
    """A value as a command line or a header spells it."""
    return str(value)


# --- the readers ---------------------------------------------------------------------------

SPEC_SCHEMA = node_at(root_schema("VideoJob"), ".spec")
SPEC_VALIDATOR = jsonschema.Draft4Validator(SPEC_SCHEMA)


def crd(path: Path) -> Reader:
    """The VideoJob CRD: structural defaulting, then the schema's checks (OpenAPI v3.0, whose
    boolean exclusive bounds are draft 4's)."""

    def read(value: Any) -> Any:
        spec = apply_defaults(SPEC_SCHEMA, {"source": SOURCE, **nest(path, value)})
        error = jsonschema.exceptions.best_match(SPEC_VALIDATOR.iter_errors(spec))
        if error is not None:
            raise CrdRefusal(error.message)
        try:
            return dig(spec, path)
        except KeyError:  # no default in the schema
            return None

    return Reader("VideoJob CRD", read, None)


def _videojob(path: Path, value: Any) -> VideoJobSpec:
    return VideoJobSpec.model_validate({"source": SOURCE, **nest(path, value)})


def _segment(spec: VideoJobSpec) -> SegmentSpec:
    return segment_spec(REF, spec, ROOT, plan(1).segments[0])


def _cli(argv: list[str], dest: str) -> Any:
    return getattr(build_parser().parse_args(argv), dest)


def operator_convert(path: Path, dest: str) -> Reader:
    """The operator's VideoJob model, its inference Job's arguments, as `convert` parses them."""

    def read(value: Any) -> Any:
        segment = _segment(_videojob(path, value))
        return _cli(jobs.convert_args(segment, segment.backend.engine), dest)

    return Reader("operator: convert Job", read, ".".join(path))


def operator_plan(path: Path, dest: str) -> Reader:
    """The operator's VideoJob model, its split Job's arguments, as `plan` parses them."""

    def read(value: Any) -> Any:
        manifest = jobs.split_job(REF, _videojob(path, value), ROOT, CONFIG)
        [container] = manifest["spec"]["template"]["spec"]["containers"]
        return _cli(container["args"], dest)

    return Reader("operator: plan Job", read, ".".join(path))


def operator_request(path: Path) -> Reader:
    """The operator's VideoJob model, its backends' request, as the inference server parses it."""

    def read(value: Any) -> Any:
        document = invocation_document(_segment(_videojob(path, value)))
        return dig(build_request(document, None).model_dump(by_alias=True), path)

    return Reader("operator: server request", read, ".".join(path))


CLI_ARGS = {
    "convert": ["--input", SOURCE, "--output", OUTPUT, "--format", "half-sbs"],
    "plan": ["--input", SOURCE, "--segment-seconds", "2", "--output-dir", "s3://media/segs"],
    "assemble": ["--plan", "s3://media/plan.json", "--output", OUTPUT],
    "serve": [],
    "preview": [SOURCE, "--at", "0", "--out", "s3://media/preview.png"],
}


def cli(command: str, option: str, dest: str, default: Any = SAME) -> Reader:
    """`stereo-infer COMMAND`'s options as it parses them (without the one under test)."""
    args = CLI_ARGS[command]
    if option in args:
        at = args.index(option)
        args = args[:at] + args[at + 2 :]

    def read(value: Any) -> Any:
        given = [] if value is OMITTED else [option, text(value)]
        return _cli([command, *args, *given], dest)

    return Reader(f"stereo-infer {command} {option}", read, f"argument {option}", default)


REQUEST = {"inputUri": SOURCE, "outputUri": OUTPUT, "format": "half-sbs"}


def server_body(path: Path, default: Any = SAME) -> Reader:
    def read(value: Any) -> Any:
        document = {k: v for k, v in REQUEST.items() if k != path[0]} | nest(path, value)
        return dig(build_request(document, None).model_dump(by_alias=True), path)

    return Reader("server request body", read, ".".join(path), default)


def server_header(path: Path, default: Any = SAME) -> Reader:
    """SageMaker's custom attributes: every value a string, keys as the body's leaves."""

    def read(value: Any) -> Any:
        document = {k: v for k, v in REQUEST.items() if k != path[0]}
        header = None if value is OMITTED else f"{path[-1]}={text(value)}"
        return dig(build_request(document, header).model_dump(by_alias=True), path)

    return Reader("server request header", read, ".".join(path), default)


def server_depth_models() -> tuple[Reader, ...]:
    """The model a request asks for: None (the model the server loaded) when it asks for none."""

    def body(value: Any) -> Any:
        document = REQUEST | nest(("stereo", "depthModel"), value)
        return build_request(document, None).depth_model

    def header(value: Any) -> Any:
        attribute = None if value is OMITTED else f"depthModel={text(value)}"
        return build_request(REQUEST, attribute).depth_model

    return (
        Reader("server request body", body, "stereo.depthModel", None),
        Reader("server request header", header, "stereo.depthModel", None),
    )


def stereoctl(field: str, path: Path, named: str) -> Reader:
    """`stereoctl submit`'s options, as it builds the VideoJob."""

    def read(value: Any) -> Any:
        options = SubmitOptions() if value is OMITTED else SubmitOptions(**{field: value})
        return dig(build_spec(SOURCE, options).to_wire(), path)

    return Reader(f"stereoctl submit --{field}", read, named)


def preview(field: str, named: str, default: Any = SAME) -> Reader:
    def read(value: Any) -> Any:
        from stereo_infer.preview import PreviewSettings  # torch: only where it is used

        settings = (
            PreviewSettings(0.0) if value is OMITTED else PreviewSettings(0.0, **{field: value})
        )
        return getattr(settings, field)

    return Reader("preview settings", read, named, default)


def engine_options() -> Reader:
    def read(value: Any) -> Any:
        options = EngineOptions() if value is OMITTED else EngineOptions(batch_size=value)
        return options.batch_size

    return Reader("engine options", read, "batch size")


# --- the settings --------------------------------------------------------------------------


def stereo(name: str, camel: str, option: str) -> tuple[Reader, ...]:
    """The readers every stereo setting has."""
    path = ("stereo", camel)
    return (
        crd(path),
        operator_convert(path, name),
        operator_request(path),
        cli("convert", option, name),
        server_body(path),
        server_header(path),
        stereoctl(name, path, f"stereo.{name}"),
        cli("preview", option, name),
        preview(name, name),
    )


def encoding(name: str) -> tuple[Reader, ...]:
    path = ("encoding", name)
    return (
        crd(path),
        operator_convert(path, name),
        operator_request(path),
        cli("convert", f"--{name}", name),
        server_body(path),
        server_header(path),
    )


FORMATS = tuple(f.value for f in OutputFormat)
ENGINES = tuple(e.value for e in Engine)

SETTINGS = [
    Setting(
        "format",
        "one of " + ", ".join(FORMATS),
        FORMATS,
        ("hologram", "Full-SBS", ""),
        "full-sbs",
        (
            crd(("format",)),
            operator_convert(("format",), "format"),
            operator_request(("format",)),
            cli("convert", "--format", "format", REQUIRED),
            cli("serve", "--format", "format"),
            server_body(("format",), REQUIRED),
            server_header(("format",), REQUIRED),
            stereoctl("format", ("format",), "format"),
        ),
    ),
    Setting(
        "divergence",
        "a number > 0 and <= 10",
        (0.01, 2.5, 10),
        (0, -1, 10.5, 11),
        2.0,
        stereo("divergence", "divergence", "--divergence"),
    ),
    Setting(
        "convergence",
        "a number >= 0 and <= 1",
        (0, 0.25, 1),
        (-0.1, 1.5),
        0.5,
        stereo("convergence", "convergence", "--convergence"),
    ),
    Setting(
        "depth model",
        "1 to 64 letters, digits or '_'",
        ("Prior", "Any_V2_L", "x" * 64),
        ("", "../etc", "a b", "x" * 65),
        "Any_V2_S",
        (
            crd(("stereo", "depthModel")),
            operator_convert(("stereo", "depthModel"), "depth_model"),
            operator_request(("stereo", "depthModel")),
            # Outside a VideoJob, None: the engine's default model (the VideoJob's default
            # where the builtin engine has its weights) or, on a server, the model it loaded.
            cli("convert", "--depth-model", "depth_model", None),
            cli("serve", "--depth-model", "depth_model", None),
            *server_depth_models(),
            stereoctl("depth_model", ("stereo", "depthModel"), "stereo.depth_model"),
            cli("preview", "--depth-model", "depth_model", None),
            preview("depth_model", "depth model", None),
        ),
    ),
    Setting(
        "pre-roll",
        "an integer >= 0 and <= 120",
        (0, 8, 120),
        (-1, 121),
        0,
        (
            # Omitted in a VideoJob: what its depth model needs (Depth Anything's by default).
            replace(crd(("stereo", "preRollFrames")), default=None),
            # A segment's own pre-roll is the plan's (its window's): the split Job reads this.
            replace(
                operator_plan(("stereo", "preRollFrames"), "pre_roll"),
                default=DEPTH_ANYTHING_WARM_UP_FRAMES,
            ),
            cli("plan", "--pre-roll", "pre_roll"),
            cli("convert", "--pre-roll", "pre_roll"),
            replace(server_body(("stereo", "preRollFrames")), default=None),
            replace(server_header(("stereo", "preRollFrames")), default=None),
        ),
    ),
    Setting(
        "engine",
        "one of " + ", ".join(ENGINES),
        ENGINES,
        ("nope", "Builtin"),
        "builtin",
        (
            crd(("backend", "engine")),
            operator_convert(("backend", "engine"), "engine"),
            cli("convert", "--engine", "engine"),
            cli("serve", "--engine", "engine"),
            # None: the engine the server runs (a request for another is refused).
            server_body(("engine",), None),
            server_header(("engine",), None),
            stereoctl("engine", ("backend", "engine"), "backend.engine"),
        ),
    ),
    Setting(
        "codec",
        "one of h264, hevc",
        tuple(c.value for c in VideoCodec),
        ("vp9", "H264"),
        "h264",
        encoding("codec"),
    ),
    Setting("crf", "an integer >= 0 and <= 51", (0, 18, 51), (-1, 52), 20, encoding("crf")),
    Setting(
        "preset",
        "one of " + ", ".join(p.value for p in EncoderPreset),
        tuple(p.value for p in EncoderPreset),
        ("warp", ""),
        "medium",
        encoding("preset"),
    ),
    Setting(
        "encoder",
        "one of software, nvenc",
        tuple(e.value for e in Encoder),
        ("cuda", "NVENC"),
        "software",
        encoding("encoder"),
    ),
    Setting(
        "container",
        "one of mp4, mkv",
        tuple(c.value for c in Container),
        ("avi",),
        "mp4",
        (
            crd(("encoding", "container")),
            operator_plan(("encoding", "container"), "container"),
            operator_request(("encoding", "container")),
            # None: the plan takes any; assemble goes by the output's extension.
            cli("plan", "--container", "container", None),
            cli("assemble", "--container", "container", None),
            server_body(("encoding", "container")),
            server_header(("encoding", "container")),
        ),
    ),
    Setting(
        "batch size",
        "an integer >= 1 and <= 64",
        (1, 8, 64),
        (0, 65),
        # Not part of a VideoJob: how an engine runs, left to it per device.
        None,
        (
            cli("convert", "--batch-size", "batch_size"),
            cli("serve", "--batch-size", "batch_size"),
            engine_options(),
        ),
    ),
]


def _cases(values: Callable[[Setting], tuple[Any, ...]]) -> list[Any]:
    return [
        pytest.param(reader, value, setting, id=f"{setting.name}-{reader.where}-{value!r}")
        for setting in SETTINGS
        for reader in setting.readers
        for value in values(setting)
    ]


@pytest.mark.parametrize(("reader", "value", "setting"), _cases(lambda s: s.refused))
def test_every_reader_refuses_what_the_rule_refuses(
    reader: Reader, value: Any, setting: Setting
) -> None:
    with pytest.raises(REFUSALS) as refusal:
        reader.read(value)
    if reader.named is not None:
        message = str(refusal.value)
        assert reader.named in message, message
        assert f"must be {setting.allowed}, not " in message, message
        assert text(value) in message, message


@pytest.mark.parametrize(("reader", "value", "setting"), _cases(lambda s: s.accepted))
def test_every_reader_accepts_what_the_rule_accepts(
    reader: Reader, value: Any, setting: Setting
) -> None:
    assert reader.read(value) == value


@pytest.mark.parametrize(("reader", "value", "setting"), _cases(lambda s: (OMITTED,)))
def test_every_reader_defaults_alike(reader: Reader, value: Any, setting: Setting) -> None:
    expected = setting.default if reader.default is SAME else reader.default
    if expected is REQUIRED:
        with pytest.raises(REFUSALS):
            reader.read(value)
    else:
        assert reader.read(value) == expected


def test_stereo_infer_has_every_engine_a_videojob_names() -> None:
    assert sorted(ENGINE_NAMES) == sorted(ENGINES)
