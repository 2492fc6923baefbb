"""Errors a user can act on: each is one line naming the problem, and its own exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar, ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A failure reported as `error: <message>` and a non-zero exit, never a traceback."""

    exit_code: ClassVar[int] = 1


class ClusterUnreachable(CliError):
    """No kubeconfig, or its API server does not answer."""

    exit_code = 3


class CrdsMissing(CliError):
    """The API server does not serve the stereo.dev resources."""

    exit_code = 4


class OperatorNotRunning(CliError):
    """Nothing acts on VideoJobs: a new one not picked up, or a deletion never cleaned up."""

    exit_code = 5


class InputError(CliError):
    """Bad input: a missing file, an unsupported format, an invalid setting."""

    exit_code = 6


class NotFound(CliError):
    """The VideoJob, Segment or pod named does not exist."""

    exit_code = 7


class StoreError(CliError):
    """The object store is not configured or a transfer failed."""

    exit_code = 8


class JobFailed(CliError):
    """The VideoJob ended Failed."""

    exit_code = 9


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Report a CliError as one line on stderr and exit with its code; wraps each command."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            # One line, even when the message quotes a multi-line status or API answer.
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return run
