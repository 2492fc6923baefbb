"""Stereo engines and the registry that names them.

Engines that need heavy libraries (torch, iw3) are imported only when asked
for, so ``probe``, ``plan`` and ``assemble`` start fast and an image without
them still runs the rest.
"""

import importlib.util
from collections.abc import Callable

from stereo_infer.engines.base import Engine, EngineJob, EngineOptions
from stereo_infer.engines.copy import CopyEngine
from stereo_infer.errors import EngineUnavailableError, UnknownEngineError
from stereo_types.backend import Engine as EngineName

__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "EngineJob",
    "EngineOptions",
    "available_engines",
    "get_engine",
    "require_engine",
]


def _copy(options: EngineOptions) -> Engine:
    return CopyEngine()


def _builtin(options: EngineOptions) -> Engine:
    _require_torch()
    from stereo_infer.engines.builtin import BuiltinEngine

    return BuiltinEngine(options)


def _iw3(options: EngineOptions) -> Engine:
    from stereo_infer.engines.iw3 import Iw3Engine

    return Iw3Engine(options)


# The engines a VideoJob can name (stereo_types.backend.Engine), in the order help lists them.
_FACTORIES: dict[str, Callable[[EngineOptions], Engine]] = {
    EngineName.COPY: _copy,
    EngineName.BUILTIN: _builtin,
    EngineName.IW3: _iw3,
}
ENGINE_NAMES = tuple(str(name) for name in _FACTORIES)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_engine(name: str) -> None:
    """Refuse, without importing anything heavy, an engine this image cannot run."""
    if name not in _FACTORIES:
        available = ", ".join(available_engines())
        raise UnknownEngineError(f"unknown engine {name!r}; available: {available}")
    if name == EngineName.BUILTIN:
        _require_torch()
    elif name == EngineName.IW3:
        from stereo_infer.engines.iw3 import require_iw3

        require_iw3()


def _require_torch() -> None:
    if not _installed("torch"):
        raise EngineUnavailableError(
            "engine 'builtin' is not available in this image: it needs torch, which is not"
            " installed (pip install torch)"
        )


def available_engines() -> list[str]:
    """The engines this image can run, in ENGINE_NAMES order."""
    needs = {"builtin": "torch", "iw3": "iw3"}
    return [name for name in ENGINE_NAMES if name not in needs or _installed(needs[name])]


def get_engine(name: str, options: EngineOptions | None = None) -> Engine:
    factory = _FACTORIES.get(name)
    if factory is None:
        available = ", ".join(available_engines())
        raise UnknownEngineError(f"unknown engine {name!r}; available: {available}")
    return factory(options or EngineOptions())
