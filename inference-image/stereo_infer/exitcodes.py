"""Process exit codes of ``stereo-infer``, the contract with the operator's Job specs.

A Kubernetes ``podFailurePolicy`` can match on them: fail the Job at once on
``BAD_INPUT`` and ``MODEL_UNAVAILABLE`` (retrying cannot help), retry on ``TEMPFAIL``, and let
``SOFTWARE`` count against the Job's ``backoffLimit`` like any crash.
"""

from typing import Final

OK: Final = 0
# Bad input: missing or unreadable media, no video stream, unknown output format
# or engine, bad command-line arguments. Never retry.
BAD_INPUT: Final = 3
# The image lacks what the request needs: an engine that is not installed, a depth model
# whose weights or library are not in the image (sysexits EX_UNAVAILABLE). Never retry: the
# same image fails the same way. The operator reports it as ModelUnavailable.
MODEL_UNAVAILABLE: Final = 69
# Internal error or an ffmpeg failure we cannot attribute (sysexits EX_SOFTWARE).
SOFTWARE: Final = 70
# Transient failure: storage unreachable, disk full, tool killed (sysexits EX_TEMPFAIL).
TEMPFAIL: Final = 75

NEVER_RETRY: Final = frozenset({BAD_INPUT, MODEL_UNAVAILABLE})
RETRY: Final = frozenset({TEMPFAIL})
