"""What this image can run: its engines and, per engine, its depth models.

Computed by the engines' own checks (``engines.require_engine``, ``depth.check_depth_model``),
which look at installed packages and weight files but load nothing heavy, so the split Job
can refuse a VideoJob in a second, before it reads the source:

    stereo-infer capabilities          # JSON, as below; the image also keeps a copy
                                       # written at build time (Dockerfile)
    stereo-infer plan ... --engine builtin --depth-model Any_V2_L

    {"engines": {"copy": {"available": true, "problem": null, "depthModels": null},
                 "builtin": {"available": true, "problem": null,
                             "depthModels": {"Prior": {"available": true, "problem": null},
                                             "Any_V2_S": {"available": false,
                                                          "problem": "depth model ..."}}},
                 "iw3": {"available": false, "problem": "engine 'iw3' is not ..."}}}

``depthModels`` is null where the engine takes no model (copy) or checks its own when it
loads it (iw3: its model names are its own, found under ``NUNIF_HOME``).
"""

from __future__ import annotations

from typing import Any

from stereo_infer.engines import ENGINE_NAMES, require_engine
from stereo_infer.errors import ModelUnavailableError
from stereo_types.backend import Engine


def _depth_module() -> Any:
    # Imports torch: only once the builtin engine is known to be installed.
    from stereo_infer.engines import depth

    return depth


def check_request(engine: str, depth_model: str | None) -> None:
    """Refuse an engine, or a depth model of the builtin engine, that this image lacks.

    Raises ModelUnavailableError (exit MODEL_UNAVAILABLE) naming what is missing and where
    it was looked for; an unknown engine name is UnknownEngineError (bad input).
    """
    require_engine(engine)
    if engine == Engine.BUILTIN and depth_model is not None:
        _depth_module().check_depth_model(depth_model)


def _problem(check: Any, *args: Any) -> dict[str, Any]:
    try:
        check(*args)
    except ModelUnavailableError as exc:
        return {"available": False, "problem": str(exc)}
    return {"available": True, "problem": None}


def _depth_models() -> dict[str, Any]:
    depth = _depth_module()
    return {name: _problem(depth.check_depth_model, name) for name in depth.DEPTH_MODELS}


def capabilities() -> dict[str, Any]:
    """Every engine this image knows, whether it can run it and why not, and its models."""
    engines: dict[str, Any] = {}
    for name in ENGINE_NAMES:
        entry = _problem(require_engine, name)
        entry["depthModels"] = (
            _depth_models() if name == Engine.BUILTIN and entry["available"] else None
        )
        engines[name] = entry
    return {"engines": engines}
