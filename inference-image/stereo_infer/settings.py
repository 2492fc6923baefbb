"""The shared setting rules (``stereo_types``) where stereo-infer reads a setting outside
its command line (which refuses bad values as it parses): refusals are bad input."""

from typing import Any

from stereo_infer.errors import BadInputError
from stereo_types.base import SettingError, check_setting


def checked(name: str, kind: Any, value: Any) -> Any:
    """``value`` under the setting type ``kind``; a BadInputError naming ``name`` otherwise."""
    try:
        return check_setting(kind, value)
    except SettingError as exc:
        raise BadInputError(f"{name}: {exc}") from None
