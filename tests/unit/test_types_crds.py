"""The generated CRDs: no drift from the models, structural, and saying what the
pydantic validators say."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field, ValidationError

from stereo_types.backend import BackendSpec, BackendType, Engine
from stereo_types.crdgen import (
    RESOURCES,
    CrdGenerationError,
    build_crd,
    drift,
    main,
    render_crds,
    structural_schema,
)
from stereo_types.names import MAX_VIDEOJOB_NAME_LENGTH, VIDEOJOB_NAME_MESSAGE
from stereo_types.segment import SegmentSpec
from stereo_types.videojob import VideoJobSpec, immutable_changes
from tests.crds import CRD_DIR, CRDS, apply_defaults, node_at, root_schema

FORBIDDEN_KEYWORDS = {
    "$ref",
    "$defs",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
    "const",
    "title",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
}
SOURCE = "s3://media/in/movie.mp4"
UID = "0b7c2f1e-8d0a-4e0e-9a51-2d3c4b5a6f70"

Path_ = tuple[str, ...]


def walk(node: dict[str, Any], path: Path_ = ()) -> Iterator[tuple[Path_, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, (*path, name))
    if "items" in node:
        yield from walk(node["items"], (*path, "[]"))


def test_committed_crds_match_the_models() -> None:
    diffs = drift(CRD_DIR)
    assert not diffs, "crds/ is stale; run `stereo-crdgen`:\n" + "\n".join(diffs)


def test_generation_is_deterministic_two_space_yaml() -> None:
    first, second = render_crds(), render_crds()
    assert first == second
    for text in first.values():
        assert "\t" not in text
        indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines()}
        assert all(indent % 2 == 0 for indent in indents)


def test_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "+kind: CustomResourceDefinition" in capsys.readouterr().out
    assert main(["--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(render_crds())
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    stale = tmp_path / "segments.stereo.dev.yaml"
    stale.write_text(stale.read_text().replace("seg\n", "sg\n"))
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "-    - sg" in capsys.readouterr().out


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural_and_bounded(kind: str) -> None:
    for path, node in walk(root_schema(kind)):
        where = ".".join(path) or "<root>"
        assert "type" in node, where
        assert not FORBIDDEN_KEYWORDS & node.keys(), where
        if node["type"] == "string":
            assert isinstance(node.get("maxLength"), int), f"{where}: unbounded string"
        if node["type"] == "array":
            assert isinstance(node.get("maxItems"), int), f"{where}: unbounded list"
        if "properties" in node:
            assert node["type"] == "object", where
            assert set(node.get("required", [])) <= node["properties"].keys(), where
        for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if exclusive in node:
                assert node[exclusive] is True and bound in node, where
        if "default" in node:
            assert path[:1] == ("spec",), f"{where}: defaults belong to spec only"
            if node["default"] == {}:
                assert not node.get("required"), where
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.keys() == {"rule", "message"} and all(rule.values()), where


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_metadata_is_left_to_the_api_server(kind: str) -> None:
    schema = root_schema(kind)
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_conditions_follow_metav1_condition(kind: str) -> None:
    conditions = node_at(root_schema(kind), ".status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert item["properties"]["reason"]["maxLength"] == 1024
    assert item["properties"]["message"]["maxLength"] == 32768


def test_names_scope_and_subresources() -> None:
    expected = {
        "VideoJob": ("videojobs.stereo.dev", "videojobs", "videojob", ["vj"]),
        "Segment": ("segments.stereo.dev", "segments", "segment", ["seg"]),
    }
    for kind, (name, plural, singular, short_names) in expected.items():
        crd = CRDS[kind]
        assert (crd["apiVersion"], crd["kind"]) == (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
        )
        assert crd["metadata"] == {"name": name}
        spec = crd["spec"]
        assert (spec["group"], spec["scope"]) == ("stereo.dev", "Namespaced")
        assert spec["names"] == {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": singular,
            "shortNames": short_names,
            "categories": ["stereo"],
        }
        [version] = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("VideoJob", ["Phase", "Progress", "Format", "Age"]),
        ("Segment", ["VideoJob", "Index", "Phase", "Attempts", "Age"]),
    ],
)
def test_printer_and_selectable_fields_point_at_the_schema(kind: str, columns: list[str]) -> None:
    version = CRDS[kind]["spec"]["versions"][0]
    schema = root_schema(kind)
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        assert node_at(schema, column["jsonPath"])["type"] == column["type"], column
    for selectable in version.get("selectableFields", []):
        assert node_at(schema, selectable["jsonPath"])["type"] in {"string", "integer", "boolean"}


def test_crd_defaults_equal_the_model_defaults() -> None:
    spec_schema = node_at(root_schema("VideoJob"), ".spec")
    assert apply_defaults(spec_schema, {"source": SOURCE}) == VideoJobSpec(source=SOURCE).to_wire()
    partial = {
        "source": SOURCE,
        "stereo": {"divergence": 3.5},
        "backend": {"type": "stub", "engine": "copy"},
    }
    assert apply_defaults(spec_schema, partial) == VideoJobSpec.model_validate(partial).to_wire()

    segment = {
        "videoJob": "movie",
        "videoJobUid": UID,
        "index": 0,
        "inputUri": "s3://w/in.mp4",
        "outputUri": "s3://w/out.mp4",
        "startFrame": 0,
        "frameCount": 1,
        "startSeconds": 0,
        "durationSeconds": 1,
    }
    segment_schema = node_at(root_schema("Segment"), ".spec")
    assert apply_defaults(segment_schema, segment) == SegmentSpec.model_validate(segment).to_wire()


def test_model_bounds_reach_the_crd() -> None:
    spec = node_at(root_schema("VideoJob"), ".spec")
    divergence = spec["properties"]["stereo"]["properties"]["divergence"]
    assert (divergence["minimum"], divergence["exclusiveMinimum"], divergence["maximum"]) == (
        0,
        True,
        10,
    )
    assert (
        spec["properties"]["segmentSeconds"]["minimum"],
        spec["properties"]["segmentSeconds"]["maximum"],
    ) == (1, 3600)
    assert spec["properties"]["format"]["default"] == "full-sbs"
    assert spec["required"] == ["source"]


def test_patterns_compile_as_re2() -> None:
    import re2  # google-re2 checks patterns the way Go does

    for kind in CRDS:
        for path, node in walk(root_schema(kind)):
            if "pattern" in node:
                assert re2.compile(node["pattern"]), path


# --- CEL rules evaluated with a CEL interpreter, against the pydantic validators ---


def rules_at(kind: str, json_path: str) -> list[dict[str, str]]:
    schema = root_schema(kind)
    node = schema if json_path == "." else node_at(schema, json_path)
    return list(node["x-kubernetes-validations"])


def cel_failures(rules: list[dict[str, str]], value: Any, old: Any = None) -> list[str]:
    """Messages of the rules that value breaks; transition rules only with old."""
    import celpy  # cel-python evaluates the CRD's CEL rules

    env = celpy.Environment()
    failures = []
    for rule in rules:
        is_transition = "oldSelf" in rule["rule"]
        if is_transition and old is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if is_transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        result = env.program(env.compile(rule["rule"])).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), (rule, result)
        if not result:
            failures.append(rule["message"])
    return failures


def pydantic_error(model: type[BaseModel], value: dict[str, Any]) -> str | None:
    try:
        model.model_validate(value)
    except ValidationError as error:
        return str(error)
    return None


BACKENDS = [
    {
        "type": backend_type.value,
        "engine": engine.value,
        **({"http": {"url": "http://svc:8080"}} if with_http else {}),
        **({"managed": {"endpointName": "ep", "region": "us-east-1"}} if with_managed else {}),
    }
    for backend_type, engine, with_http, with_managed in itertools.product(
        BackendType, Engine, (False, True), (False, True)
    )
]


@pytest.mark.parametrize("kind", ["VideoJob", "Segment"])
@pytest.mark.parametrize(
    "backend",
    BACKENDS,
    ids=lambda b: (
        f"{b['type']}-{b['engine']}-{'+'.join(sorted(set(b) - {'type', 'engine'})) or 'bare'}"
    ),
)
def test_backend_cel_rules_agree_with_pydantic(kind: str, backend: dict[str, Any]) -> None:
    schema = node_at(root_schema(kind), ".spec.backend")
    failures = cel_failures(rules_at(kind, ".spec.backend"), apply_defaults(schema, backend))
    error = pydantic_error(BackendSpec, backend)
    assert (error is None) == (not failures), (failures, error)
    if error is not None:
        assert any(message in error for message in failures)


@pytest.mark.parametrize(
    ("segment_seconds", "timeout"),
    list(itertools.product([1, 300, 3600], [1, 300, 3600])),
)
def test_spec_cel_rules_agree_with_pydantic(segment_seconds: int, timeout: int) -> None:
    spec = {
        "source": SOURCE,
        "segmentSeconds": segment_seconds,
        "timeouts": {"segmentSeconds": timeout},
    }
    schema = node_at(root_schema("VideoJob"), ".spec")
    failures = cel_failures(rules_at("VideoJob", ".spec"), apply_defaults(schema, spec))
    error = pydantic_error(VideoJobSpec, spec)
    assert (error is None) == (not failures), (failures, error)
    if error is not None:
        assert any(message in error for message in failures)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"parallelism": 8},
        {"source": "gs://b/other.mp4"},
        {"format": "vr180"},
        {"source": "s3://x/y", "format": "anaglyph"},
    ],
)
def test_transition_rules_agree_with_immutable_changes(change: dict[str, Any]) -> None:
    schema = node_at(root_schema("VideoJob"), ".spec")
    old = apply_defaults(schema, {"source": SOURCE})
    new = apply_defaults(schema, {**old, **change})
    failures = cel_failures(rules_at("VideoJob", ".spec"), new, old)
    expected = immutable_changes(VideoJobSpec.model_validate(old), VideoJobSpec.model_validate(new))
    assert failures == expected


@pytest.mark.parametrize("length", [1, MAX_VIDEOJOB_NAME_LENGTH, MAX_VIDEOJOB_NAME_LENGTH + 1, 253])
def test_videojob_name_rule(length: int) -> None:
    videojob = {"metadata": {"name": "v" * length}, "spec": {"source": SOURCE}}
    failures = cel_failures(rules_at("VideoJob", "."), videojob)
    assert failures == ([] if length <= MAX_VIDEOJOB_NAME_LENGTH else [VIDEOJOB_NAME_MESSAGE])


# --- the generator refuses schemas that would not be structural or bounded ---


class UnboundedString(BaseModel):
    name: str


class UnboundedList(BaseModel):
    items: list[int] = Field(default_factory=list)


class Union(BaseModel):
    value: int | str = Field(default=0, max_length=3)


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (UnboundedString, "spec.name: string without max_length"),
        (UnboundedList, "spec.items: list without max_length"),
        (Union, "spec.value: unions other than Optional"),
    ],
)
def test_generator_rejects_unbounded_or_ambiguous_models(
    model: type[BaseModel], problem: str
) -> None:
    with pytest.raises(CrdGenerationError, match=problem):
        structural_schema(model, defaults=True, path="spec")


def test_build_crd_returns_plain_data() -> None:
    for resource in RESOURCES:
        crd = build_crd(resource)
        assert yaml.safe_load(yaml.safe_dump(crd)) == crd
