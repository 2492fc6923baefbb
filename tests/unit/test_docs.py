"""The documentation cannot drift from the code: the generated pages match their sources,
every reason and error the code can raise is on the troubleshooting page, every metric named
is one the code exports and every exported one is documented, every stereoctl command, option
and exit code is on the CLI page, the examples cover every format and backend, and every page
is linked and links to files and headings that exist."""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from stereo_operator import reconcile, segments, views
from stereo_operator.backends import http, managed
from stereo_types import docgen
from stereo_types.backend import BackendType, Engine
from stereo_types.base import WireModel
from stereo_types.crdgen import RESOURCES, build_crd
from stereo_types.formats import OutputFormat
from stereo_types.videojob import VideoJobSpec

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
EXAMPLES = sorted((ROOT / "examples" / "videojobs").glob("*.yaml"))
SAMPLE_SOURCE = "s3://stereo/samples/sample.mp4"
REQUIRES = "stereo.dev/example-requires"
REQUIREMENTS = {"gpu", "http-endpoint", "managed-endpoint"}
MAX_CPU_EXAMPLES = 4


# ---------------------------------------------------------------------------------------------
# Generated pages


def test_reference_page_matches_the_models() -> None:
    committed = (ROOT / docgen.REFERENCE_PAGE).read_text()
    assert committed == docgen.render_reference(), "docs/reference.md is stale: run stereo-docgen"


def test_helm_values_page_matches_the_chart() -> None:
    values, schema = docgen.load_chart(ROOT / docgen.CHART_DIR)
    committed = (ROOT / docgen.HELM_VALUES_PAGE).read_text()
    expected = docgen.render_helm_values(values, schema)
    assert committed == expected, "docs/helm-values.md is stale: run stereo-docgen"


def test_every_helm_value_has_a_description() -> None:
    values, schema = docgen.load_chart(ROOT / docgen.CHART_DIR)
    missing = docgen.undescribed_values(values, schema)
    assert not missing, f"add a description to these values in values.schema.json: {missing}"


def _wire_fields(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        yield path
        annotation = info.annotation
        item_path = path + ("[]" if get_origin(annotation) is list else "")
        for arg in get_args(annotation) or (annotation,):
            if isinstance(arg, type) and issubclass(arg, WireModel):
                yield from _wire_fields(arg, item_path)


def test_reference_lists_every_model_field() -> None:
    """Checked against the pydantic models themselves, not the schema the generator walks."""
    page = (ROOT / docgen.REFERENCE_PAGE).read_text()
    for resource in RESOURCES:
        for part, model in (("spec", resource.spec_model), ("status", resource.status_model)):
            for path in _wire_fields(model, part):
                assert f"| `{path}` |" in page, f"{resource.kind} {path} is not in reference.md"


def test_check_mode_fails_on_a_stale_page_and_passes_once_regenerated(tmp_path: Path) -> None:
    shutil.copytree(ROOT / docgen.CHART_DIR, tmp_path / docgen.CHART_DIR)
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0
    schema_path = tmp_path / docgen.CHART_DIR / "values.schema.json"
    schema_path.write_text(schema_path.read_text().replace("Scrape interval.", "How often."))
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    (tmp_path / docgen.REFERENCE_PAGE).write_text("stale\n")
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0


def test_a_value_missing_from_the_schema_is_an_error() -> None:
    schema = {"type": "object", "properties": {"known": {"type": "string"}}}
    with pytest.raises(docgen.DocGenerationError, match="unknown"):
        docgen.value_rows({"known": "", "unknown": 1}, schema)


def test_a_value_without_a_description_is_reported() -> None:
    schema = {
        "type": "object",
        "definitions": {"port": {"type": "integer", "description": "A port."}},
        "properties": {
            "a": {"type": "object", "properties": {"port": {"$ref": "#/definitions/port"}}},
            "b": {"type": "string"},
        },
    }
    assert docgen.undescribed_values({"a": {"port": 80}, "b": ""}, schema) == ["b"]


# ---------------------------------------------------------------------------------------------
# Troubleshooting: every reason and error of the code


CAMEL_CASE = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]*)+$|^[A-Z][a-z]+$")

# Call (by function or method name) -> positions of its arguments that are reasons.
_OPERATOR_REASON_ARGS = {
    "Event": (1,),
    "set_condition": (3,),
    "AttemptFailure": (0,),
    "failed": (0,),
    "failure_reason": (0,),
}
_WATCHER_REASON_ARGS = {
    "_ignored": (0,),
    "Ignored": (0,),
    "RetryLater": (0,),
    "Result": (1,),
    "labels": (1,),
}


def _literals(node: ast.expr) -> Iterator[str]:
    """String literals an expression can evaluate to (`x or "Default"`, `a if c else "b"`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _literals(value)
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body)
        yield from _literals(node.orelse)


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _reason_literals(folder: Path, positions: Mapping[str, tuple[int, ...]]) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for index in positions.get(_call_name(node), ()):
                if index < len(node.args):
                    found.update(_literals(node.args[index]))
            for keyword in node.keywords:
                if keyword.arg == "reason":
                    found.update(_literals(keyword.value))
    return found


def _module_reasons(*modules: Any) -> set[str]:
    return {
        value
        for module in modules
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and CAMEL_CASE.match(value)
    }


def _base_name(base: ast.expr) -> str:
    if isinstance(base, ast.Name):
        return base.id
    return base.attr if isinstance(base, ast.Attribute) else ""


def _error_classes(*files: Path) -> set[str]:
    """Public classes deriving from an ...Error or ...Exception class."""
    return {
        node.name
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and not node.name.startswith("_")
        and any(_base_name(b).endswith(("Error", "Exception")) for b in node.bases)
    }


def operator_reasons() -> set[str]:
    """Condition types and reasons, event reasons and segment failure reasons."""
    operator = ROOT / "operator" / "stereo_operator"
    found = _module_reasons(reconcile, http, managed)
    found |= {views.POD_FAILURE_POLICY_REASON, *segments._REASONS, *segments._REASONS.values()}
    found |= {
        r
        for r in _reason_literals(operator, _OPERATOR_REASON_ARGS)
        if CAMEL_CASE.match(r) and r not in {"Normal", "Warning", "True", "False"}
    }
    return found


def watcher_reasons() -> set[str]:
    """The reason labels of stereo_watcher_events_ignored and stereo_watcher_errors."""
    found = _reason_literals(
        ROOT / "operator" / "stereo_operator" / "watcher", _WATCHER_REASON_ARGS
    )
    return {r for r in found if re.fullmatch(r"[a-z]+(-[a-z]+)*", r)}


def error_classes() -> set[str]:
    return _error_classes(
        *(ROOT / "inference-image" / "stereo_infer").rglob("*.py"),
        ROOT / "shared_types" / "stereo_storage" / "errors.py",
        ROOT / "operator" / "stereo_operator" / "watcher" / "config.py",
        ROOT / "cli" / "stereoctl" / "errors.py",
    )


def exit_codes() -> dict[str, int]:
    from stereo_infer import exitcodes

    return {n: v for n, v in vars(exitcodes).items() if n.isupper() and isinstance(v, int)}


def validation_messages() -> set[str]:
    messages: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            messages.update(r["message"] for r in node.get("x-kubernetes-validations", ()))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for resource in RESOURCES:
        walk(build_crd(resource))
    return messages


def test_the_collectors_find_what_the_code_raises() -> None:
    """A collector that finds nothing would make the coverage test below pass vacuously."""
    assert {"BadInput", "SegmentFailed", "AttemptFailed", "CleanupFailed"} <= operator_reasons()
    assert {"OperatorRestarted", "Timeout", "JobFailed", "RetriesExhausted"} <= operator_reasons()
    assert {"segment-pending", "older-than-recorded", "malformed"} <= watcher_reasons()
    assert {"ProbeError", "UsageError", "AccessDenied", "ConfigError"} <= error_classes()
    assert exit_codes()["BAD_INPUT"] == 3
    assert "source is immutable" in validation_messages()


def _troubleshooting() -> str:
    return TROUBLESHOOTING.read_text()


@pytest.mark.parametrize("reason", sorted(operator_reasons() | watcher_reasons()))
def test_every_reason_is_in_troubleshooting(reason: str) -> None:
    assert f"`{reason}`" in _troubleshooting(), f"explain `{reason}` in docs/troubleshooting.md"


@pytest.mark.parametrize("name", sorted(error_classes()))
def test_every_error_class_is_in_troubleshooting(name: str) -> None:
    assert f"`{name}`" in _troubleshooting(), f"explain `{name}` in docs/troubleshooting.md"


@pytest.mark.parametrize("name", sorted(exit_codes()))
def test_every_exit_code_is_in_troubleshooting(name: str) -> None:
    row = f"| `{exit_codes()[name]}` (`{name}`) |"
    assert row in _troubleshooting(), f"add the row {row} to docs/troubleshooting.md"


@pytest.mark.parametrize("message", sorted(validation_messages()))
def test_every_validation_message_is_in_troubleshooting(message: str) -> None:
    assert message in _troubleshooting(), f"explain {message!r} in docs/troubleshooting.md"


# ---------------------------------------------------------------------------------------------
# Examples


def _examples() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, yaml.safe_load(path.read_text())) for path in EXAMPLES]


def _requires(manifest: dict[str, Any]) -> str | None:
    annotations = manifest["metadata"].get("annotations") or {}
    value: str | None = annotations.get(REQUIRES)
    return value


def test_examples_are_valid_videojobs_with_unique_names() -> None:
    names = []
    for path, manifest in _examples():
        assert manifest["apiVersion"] == "stereo.dev/v1alpha1", path
        assert manifest["kind"] == "VideoJob", path
        VideoJobSpec.model_validate(manifest["spec"])
        assert _requires(manifest) in REQUIREMENTS | {None}, path
        names.append(manifest["metadata"]["name"])
    assert len(names) == len(set(names)), names


def test_examples_cover_every_format_backend_and_engine() -> None:
    specs = [VideoJobSpec.model_validate(m["spec"]) for _, m in _examples()]
    assert {s.format for s in specs} == set(OutputFormat)
    assert {s.backend.type for s in specs} == set(BackendType)
    assert {s.backend.engine for s in specs} == set(Engine)


def test_cpu_runnable_examples_are_few_and_run_on_the_embedded_store() -> None:
    """What the e2e suite runs: no annotation, the sample in the embedded store, no weights."""
    runnable = [(p, m) for p, m in _examples() if _requires(m) is None]
    assert 1 <= len(runnable) <= MAX_CPU_EXAMPLES, [p.name for p, _ in runnable]
    for path, manifest in runnable:
        spec = VideoJobSpec.model_validate(manifest["spec"])
        assert spec.source == SAMPLE_SOURCE, path
        assert spec.segment_seconds <= 2, path
        weight_free = spec.backend.engine is Engine.BUILTIN and spec.stereo.depth_model == "Prior"
        assert spec.backend.type is BackendType.STUB or (
            spec.backend.type is BackendType.JOB and weight_free
        ), path


# ---------------------------------------------------------------------------------------------
# Pages and links


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def test_every_page_is_in_the_index() -> None:
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"link {page.name} from docs/README.md"


@pytest.mark.parametrize(
    "page",
    [
        *sorted(DOCS.glob("*.md")),
        ROOT / "README.md",
        ROOT / "charts" / "stereo-operator" / "README.md",
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_resolve(page: Path) -> None:
    for target, _anchor in LINK.findall(CODE.sub("", page.read_text())):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


ANCHORED_LINK = re.compile(r"\]\(([^)#\s]*)#([^)\s]+)\)")
HEADING = re.compile(r"^#+ (.+)$", re.MULTILINE)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    headings = HEADING.findall(text)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    "page",
    [*sorted(DOCS.glob("*.md")), ROOT / "charts" / "stereo-operator" / "README.md"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_anchors_resolve(page: Path) -> None:
    for target, anchor in ANCHORED_LINK.findall(CODE.sub("", page.read_text())):
        linked = page.parent / target if target else page
        if "://" in target or linked.suffix != ".md":
            continue
        assert anchor in _anchors(linked), f"{page.name} links to missing #{anchor} of {linked}"


# ---------------------------------------------------------------------------------------------
# Metrics: the names on the pages are the names the code exports, and every one is documented


OPERATIONS = DOCS / "operations.md"
METRIC_NAME = re.compile(r"stereo_[a-z_]+\*?")
# The sample names Prometheus exposes for one family of each type (prometheus_client).
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("", "_bucket", "_sum", "_count", "_created"),
}


def _families(registry: Any) -> dict[str, str]:
    """Family name -> type, of the stereo_ metrics a prometheus_client registry holds."""
    return {m.name: m.type for m in registry.collect() if m.name.startswith("stereo_")}


def operator_metrics() -> dict[str, str]:
    """The operator's registry (counters, histograms) and the gauges it computes at scrape
    time from its indexes (registered only when it serves /metrics)."""
    import asyncio

    from prometheus_client import REGISTRY

    from stereo_operator import handlers
    from stereo_operator import metrics as _imported  # noqa: F401  (registers its metrics)

    found = _families(REGISTRY)
    found |= {name: "gauge" for name in asyncio.run(handlers._gauges({}, {}, {}))}
    return found


def watcher_metrics() -> dict[str, str]:
    from stereo_operator.watcher.metrics import WatcherMetrics

    return _families(WatcherMetrics().registry)


def inference_metrics() -> dict[str, str]:
    from stereo_infer.metrics.prometheus import PrometheusSink

    return _families(PrometheusSink(None, None, "stereo-infer", "pod").registry)


def _exposed(families: Mapping[str, str]) -> set[str]:
    return {name + s for name, kind in families.items() for s in _SAMPLE_SUFFIXES[kind]}


def _python_packages() -> set[str]:
    """stereo_operator, stereo_infer, ...: module paths on the pages are not metrics."""
    return {p.name for p in ROOT.glob("*/stereo_*") if (p / "__init__.py").exists()}


def _metric_mentions(page: Path) -> set[str]:
    packages = _python_packages()
    text = re.sub(r"\]\([^)]*\)", "]", page.read_text())  # link targets: file names, anchors
    return {m for m in METRIC_NAME.findall(text) if m not in packages}


def test_the_metric_collectors_find_every_component() -> None:
    assert operator_metrics()["stereo_segment_conversion_seconds"] == "histogram"
    assert operator_metrics()["stereo_segment_conversion_frames"] == "counter"
    assert operator_metrics()["stereo_inflight_jobs"] == "gauge"
    assert watcher_metrics()["stereo_watcher_events_applied"] == "counter"
    assert "stereo_infer_conversion_seconds" in inference_metrics()
    assert {"stereo_operator", "stereo_infer"} <= _python_packages()
    assert {"stereo_segment_conversion_frames_total", "stereo_segment_conversion_*"} <= (
        _metric_mentions(OPERATIONS)
    )


@pytest.mark.parametrize(
    "page",
    [*sorted(DOCS.glob("*.md")), ROOT / "charts" / "stereo-operator" / "README.md"],
    ids=lambda p: p.name,
)
def test_every_metric_on_a_page_exists(page: Path) -> None:
    exposed = _exposed(operator_metrics() | watcher_metrics() | inference_metrics())
    for name in sorted(_metric_mentions(page)):
        if name.endswith("*"):
            assert any(e.startswith(name[:-1]) for e in exposed), f"{page.name}: {name}"
        else:
            assert name in exposed, f"{page.name} names {name}, which no component exports"


@pytest.mark.parametrize(
    "collect", [operator_metrics, watcher_metrics, inference_metrics], ids=lambda f: f.__name__
)
def test_every_metric_is_in_operations(collect: Callable[[], dict[str, str]]) -> None:
    mentioned = _metric_mentions(OPERATIONS)
    component = collect.__name__.removesuffix("_metrics")
    for name, kind in sorted(collect().items()):
        shown = name + "_total" if kind == "counter" else name
        assert shown in mentioned, f"document the {component}'s `{shown}` in operations.md"


def test_every_cloud_metric_and_setting_is_in_operations() -> None:
    from datetime import UTC, datetime

    from stereo_infer.metrics import cloudmonitoring, cloudwatch
    from stereo_infer.metrics.base import Conversion

    page = OPERATIONS.read_text()
    every_figure = Conversion("builtin", "half-sbs", 48, 2.0, 1_000_000, "cpu")
    now = datetime.now(UTC)
    for datum in cloudwatch.metric_data(every_figure, now):
        assert f"`{datum['MetricName']}`" in page, datum["MetricName"]
    for series in cloudmonitoring.time_series(every_figure, "project", "stereo", now):
        suffix = series.metric.type.rsplit("/", 1)[-1]
        assert f"`{suffix}`" in page, series.metric.type
    config = ROOT / "inference-image" / "stereo_infer" / "metrics" / "config.py"
    settings = {
        node.value
        for node in ast.walk(ast.parse(config.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"STEREO_METRICS(_[A-Z]+)?", node.value)
    }
    assert {"STEREO_METRICS", "STEREO_METRICS_PUSHGATEWAY"} <= settings
    for name in sorted(settings):
        assert f"`{name}`" in page, f"document {name} in operations.md"


# ---------------------------------------------------------------------------------------------
# stereoctl: every command, option and exit code of the code is on cli.md


CLI_PAGE = DOCS / "cli.md"


def _cli_commands() -> Iterator[tuple[list[str], Any]]:
    import typer.main

    from stereoctl.main import app

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def _cli_section(path: list[str]) -> str:
    """The part of cli.md about a command: its `### stereoctl <top command>` section."""
    page = CLI_PAGE.read_text()
    heading = "## Global options" if not path else f"### `stereoctl {path[0]}"
    assert heading in page, f"add a section {heading} to cli.md"
    section = page.split(heading, 1)[1]
    return re.split(r"\n##+ ", section, maxsplit=1)[0]


def _long_options(command: Any) -> list[str]:
    return [
        opt
        for param in command.params
        for opt in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
        if opt.startswith("--") and opt != "--help"
    ]


def test_every_stereoctl_command_and_option_is_in_cli_page() -> None:
    commands = list(_cli_commands())
    assert {"submit", "dev"} <= {p[0] for p, _ in commands if p}
    for path, command in commands:
        section = _cli_section(path)
        if len(path) > 1:
            assert f"`{' '.join(path)}`" in section, f"describe `{' '.join(path)}` in cli.md"
        for option in _long_options(command):
            assert f"`{option}" in section, f"describe {option} of {path or 'stereoctl'}"


def test_every_stereoctl_exit_code_is_in_cli_page() -> None:
    from stereoctl import errors

    page = CLI_PAGE.read_text()
    classes: list[type[errors.CliError]] = [errors.CliError, *errors.CliError.__subclasses__()]
    assert len(classes) >= 8
    for cls in classes:
        row = f"| `{cls.exit_code}` | `{cls.__name__}` |"
        assert row in page, f"add the row {row} to docs/cli.md"
