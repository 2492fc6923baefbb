"""Exception types; each carries the exit code the CLI turns it into."""

from typing import ClassVar

from stereo_infer import exitcodes
from stereo_types.refusals import MODEL_UNAVAILABLE


class StereoInferError(Exception):
    """Base class; an error of this exact type is an internal failure."""

    exit_code: ClassVar[int] = exitcodes.SOFTWARE


class BadInputError(StereoInferError):
    """The input or the request is wrong; retrying cannot help."""

    exit_code: ClassVar[int] = exitcodes.BAD_INPUT


class TransientError(StereoInferError):
    """Something outside our control failed (storage, disk, a killed tool); retry."""

    exit_code: ClassVar[int] = exitcodes.TEMPFAIL


class ModelUnavailableError(BadInputError):
    """The image cannot run what the request asks for: an engine or depth model it lacks.

    The CLI prints it as ``stereo-infer: error [ModelUnavailable]: ...`` (see
    ``stereo_types.refusals``) so the operator can tell it from other bad input.
    """

    exit_code: ClassVar[int] = exitcodes.MODEL_UNAVAILABLE
    reason: ClassVar[str] = MODEL_UNAVAILABLE


class ProbeError(BadInputError):
    """The source cannot be probed: missing file, no video stream, unreadable data."""


class InputNotFoundError(BadInputError):
    """An input file or object does not exist."""


class SourceChangedError(BadInputError):
    """The source is not the version first read: replaced while a VideoJob reads it."""


class UnsupportedUriError(BadInputError):
    """A URI scheme this image cannot read or write."""


class UnknownFormatError(BadInputError):
    """An output stereo format that does not exist."""


class UnknownEngineError(BadInputError):
    """An engine name that is unknown or not available in this image."""


class EngineUnavailableError(UnknownEngineError, ModelUnavailableError):
    """A known engine whose libraries this image does not have (torch, iw3)."""


class AssembleInputError(BadInputError):
    """Segment outputs that cannot be joined: missing, or differing codec or size."""


class MediaError(StereoInferError):
    """ffmpeg or ffprobe failed in a way we cannot attribute to input or environment."""


class ToolMissingError(StereoInferError):
    """ffmpeg or ffprobe is not installed: the image is broken."""
