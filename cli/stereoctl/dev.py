"""`stereoctl dev up|down|status`: the embedded default stack on this machine.

The stack (a local cluster, SeaweedFS, the Helm chart) lives in stereo_cluster.stack, a
development package, so it is imported only when a dev command runs. `up` writes the
stereoctl config file, so `stereoctl submit` then targets the stack without further flags.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.table import Table

from stereoctl import config as config_file
from stereoctl.config import CliConfig, StoreSettings
from stereoctl.errors import CliError, guarded

app = typer.Typer(help="The embedded local stack (cluster, store, operator) for trying it out.")

# The stack's storage Secret is installed for VideoJobs in this namespace.
JOB_NAMESPACE = "default"

StateDir = Annotated[
    Path | None, typer.Option(help="State directory of the stack (default: the stack's own).")
]


def _stack_module() -> ModuleType:
    try:
        return importlib.import_module("stereo_cluster.stack")
    except ModuleNotFoundError:
        raise CliError(
            "stereoctl dev needs the development install (stereo_cluster): "
            "pip install -e '.[dev]' in a stereo-operator checkout"
        ) from None


def _call(function: str, state_dir: Path | None) -> Any:
    module = _stack_module()
    args = [state_dir] if state_dir is not None else []
    try:
        return getattr(module, function)(*args)
    except module.StackError as exc:
        raise CliError(f"dev {function}: {exc}") from None


def _origin(stack: Any) -> str:
    return f"stereoctl dev up {stack.state_dir}"


def config_for(stack: Any) -> CliConfig:
    """The config file that points stereoctl at the stack."""
    store = StoreSettings(
        root=stack.workspace,
        endpoint=stack.s3_endpoint,
        region="us-east-1",
        path_style=True,
        access_key_id=stack.access_key,
        secret_access_key=stack.secret_key,
    )
    kubeconfig = str(stack.kubeconfig)
    return CliConfig(
        kubeconfig=kubeconfig, namespace=JOB_NAMESPACE, store=store, origin=_origin(stack)
    )


def _table(stack: Any) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    for key, value in (
        ("kubeconfig", stack.kubeconfig),
        ("operator", f"{stack.namespace} (release {stack.release})"),
        ("store", f"{stack.s3_endpoint} bucket {stack.bucket}"),
        ("workspace", stack.workspace),
        ("state", stack.state_dir),
    ):
        table.add_row(f"[bold]{key}[/bold]", str(value))
    return table


def _config_path(ctx: typer.Context) -> Path:
    path: Path | None = ctx.obj.config_path if ctx.obj is not None else None
    return path or config_file.default_path()


@app.command()
@guarded
def up(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Start (or reuse) the stack and write the stereoctl config for it."""
    stack = _call("up", state_dir)
    path = _config_path(ctx)
    config_file.save(config_for(stack), path)
    ctx.obj.out.print(_table(stack))
    ctx.obj.out.print(f"wrote {path}")


@app.command()
@guarded
def down(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Stop the stack and remove the config file `dev up` wrote."""
    stack = _call("status", state_dir)
    _call("down", state_dir)
    path = _config_path(ctx)
    if stack is not None and path.exists() and config_file.load(path).origin == _origin(stack):
        path.unlink()
    ctx.obj.out.print("stack stopped")


@app.command()
@guarded
def status(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Whether the stack runs, and where its parts are; exit 1 when it does not run."""
    stack = _call("status", state_dir)
    if stack is None:
        ctx.obj.out.print("the embedded stack is not running")
        raise typer.Exit(1)
    ctx.obj.out.print(_table(stack))
