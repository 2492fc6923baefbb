"""Stereo engines and the registry that names them."""

from collections.abc import Callable

from stereo_infer.engines.base import Engine, EngineJob
from stereo_infer.engines.copy import CopyEngine
from stereo_infer.errors import UnknownEngineError

_FACTORIES: dict[str, Callable[[], Engine]] = {"copy": CopyEngine}
# Names the CLI accepts that this image does not ship yet.
PLANNED_ENGINES = ("builtin", "iw3")
ENGINE_NAMES = (*_FACTORIES, *PLANNED_ENGINES)

__all__ = ["ENGINE_NAMES", "Engine", "EngineJob", "available_engines", "get_engine"]


def available_engines() -> list[str]:
    return sorted(_FACTORIES)


def get_engine(name: str) -> Engine:
    factory = _FACTORIES.get(name)
    if factory is not None:
        return factory()
    available = ", ".join(available_engines())
    if name in PLANNED_ENGINES:
        raise UnknownEngineError(
            f"engine {name!r} is not available in this image yet; available: {available}"
        )
    raise UnknownEngineError(f"unknown engine {name!r}; available: {available}")
