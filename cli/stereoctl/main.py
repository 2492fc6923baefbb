"""The stereoctl command tree: thin typer commands over kube, transfer, follow and render.

Every command runs under errors.guarded, so a CliError ends as one `error: ...` line and its exit
code. New commands (e.g. `report`) take the Session from ctx.obj like the ones below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stereo_types.layout import StorageRoot
from stereo_types.videojob import VideoJobPhase, VideoJobSpec
from stereoctl import dev, follow, manifest, render, report, transfer
from stereoctl.errors import (
    CliError,
    InputError,
    JobFailed,
    NotFound,
    OperatorNotRunning,
    guarded,
)
from stereoctl.kube import Kube, api_errors
from stereoctl.session import Session

app = typer.Typer(
    help="Submit, follow and fetch stereo-conversion VideoJobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev.app, name="dev")


@app.callback()
def main(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None, typer.Option(help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context.")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of the VideoJobs.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="stereoctl config file (default: ~/.config/stereoctl/config.yaml)."),
    ] = None,
) -> None:
    ctx.obj = Session(kubeconfig, context, namespace, config)


def session(ctx: typer.Context) -> Session:
    found: Session = ctx.obj
    return found


# -- submit ------------------------------------------------------------------------------------


def _source(video: str) -> tuple[str, Path | None]:
    """(the source URI if given, the local file otherwise)."""
    if manifest.is_uri(video):
        return video, None
    path = Path(video).expanduser()
    if not path.is_file():
        raise InputError(f"file not found: {video}")
    return "", path.resolve()


def _upload(s: Session, kube: Kube, path: Path, name: str) -> str:
    store = s.store(kube)
    root = StorageRoot.parse(store.root)
    uri = root.uri_for(transfer.UPLOADS_DIR, kube.namespace, name, manifest.safe_file_name(path))
    transfer.upload(path, uri, store.storage_config(), s.err)
    return uri


def _download(s: Session, kube: Kube, videojob: dict, output: Path) -> None:
    uri = render.videojob_status(videojob).output_uri
    if uri is None:
        raise NotFound(f"VideoJob {videojob['metadata']['name']} records no output")
    transfer.download(uri, output, s.storage_config(kube), s.err)
    s.out.print(f"saved {output}")


def _finished(s: Session, kube: Kube, videojob: dict, output: Path | None) -> None:
    status = render.videojob_status(videojob)
    name = videojob["metadata"]["name"]
    if status.phase is not VideoJobPhase.SUCCEEDED:
        raise JobFailed(f"VideoJob {name} failed: {status.message or 'no message'}")
    ext = VideoJobSpec.model_validate(videojob["spec"]).encoding.container.value
    _download(s, kube, videojob, output or Path(f"{name}.{ext}"))


@app.command()
@guarded
def submit(
    ctx: typer.Context,
    video: Annotated[str, typer.Argument(help="A local video file, or an s3/gs/file/http URI.")],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="Output layout, e.g. half-sbs.")
    ] = None,
    divergence: Annotated[float | None, typer.Option(help="3D strength, % of width.")] = None,
    convergence: Annotated[float | None, typer.Option(help="Screen plane depth, 0..1.")] = None,
    depth_model: Annotated[
        str | None,
        typer.Option(help="Depth model, e.g. Any_V2_S (default) or the weight-free Prior."),
    ] = None,
    segment_seconds: Annotated[int | None, typer.Option(help="Seconds per segment.")] = None,
    parallelism: Annotated[int | None, typer.Option(help="Segments converted at once.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="job (default) or stub (copies: a dry run).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="builtin, iw3 or copy.")] = None,
    completion_grace_seconds: Annotated[
        int | None,
        typer.Option(
            help="Seconds to wait for a segment's storage event before checking its output "
            "directly (default 120); 0 suits stores without events, such as file://."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="VideoJob name (default: from VIDEO).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow to the end and download the result.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where --wait saves the result.")
    ] = None,
    pickup_timeout: Annotated[
        float, typer.Option(help="Seconds the operator has to pick the VideoJob up.")
    ] = 30.0,
) -> None:
    """Create a VideoJob for VIDEO (uploading a local file first)."""
    s = session(ctx)
    uri, path = _source(video)
    options = manifest.SubmitOptions(
        format,
        divergence,
        convergence,
        depth_model,
        segment_seconds,
        parallelism,
        backend,
        engine,
        completion_grace_seconds,
    )
    # Validate every option before anything is uploaded or created.
    manifest.build_spec(uri or "file:///placeholder", options)
    job_name = manifest.check_name(name) if name else manifest.name_for(video)
    kube = s.kube()
    source = _upload(s, kube, path, job_name) if path is not None else uri
    spec = manifest.build_spec(source, options)
    kube.create_videojob(manifest.videojob_manifest(job_name, kube.namespace, spec))
    s.out.print(f"videojob {kube.namespace}/{job_name} created")
    follow.wait_picked_up(kube, job_name, pickup_timeout, s.err)
    if wait:
        _finished(s, kube, follow.follow(kube, job_name, s.err), output)


# -- reading -----------------------------------------------------------------------------------


@app.command("list")
@guarded
def list_videojobs(ctx: typer.Context) -> None:
    """The VideoJobs of the namespace."""
    s = session(ctx)
    videojobs = s.kube().videojobs()
    if not videojobs:
        s.out.print("No VideoJobs.")
        return
    s.out.print(render.videojob_table(videojobs))


@app.command()
@guarded
def status(ctx: typer.Context, name: str) -> None:
    """Phase, conditions and the per-segment table of a VideoJob."""
    s = session(ctx)
    kube = s.kube()
    videojob = kube.videojob(name)
    s.out.print(render.status_view(videojob, kube.segments(videojob)))


def _segment_job(kube: Kube, videojob: dict, index: int) -> str:
    name = videojob["metadata"]["name"]
    found = [seg for seg in kube.segments(videojob) if seg["spec"]["index"] == index]
    if not found:
        raise NotFound(f"VideoJob {name} has no segment {index}")
    job = render.segment_status(found[0]).job_name
    if job is None:
        raise NotFound(f"segment {index} of {name} has no inference Job yet")
    return job


def _media_jobs(kube: Kube, videojob: dict) -> list[str]:
    jobs = kube.job_names(videojob, "split") + kube.job_names(videojob, "assemble")
    if not jobs:
        raise NotFound(
            f"VideoJob {videojob['metadata']['name']} has no split or assemble Job "
            "(not started yet, or removed after ttlSecondsAfterFinished)"
        )
    return jobs


@app.command()
@guarded
def logs(
    ctx: typer.Context,
    name: str,
    segment: Annotated[
        int | None, typer.Option(help="A segment's inference Job instead of split/assemble.")
    ] = None,
) -> None:
    """Logs of the split and assemble Jobs' pods, or of one segment's latest Job."""
    s = session(ctx)
    kube = s.kube()
    videojob = kube.videojob(name)
    jobs = [_segment_job(kube, videojob, segment)] if segment is not None else None
    for job in jobs or _media_jobs(kube, videojob):
        pods = kube.pod_names(job)
        if not pods:
            raise NotFound(f"Job {job} has no pods (removed, or not scheduled yet)")
        for pod in pods:
            s.out.rule(f"Job {job}, pod {pod}")
            s.out.out(kube.pod_log(pod), end="", highlight=False)


# -- changing ------------------------------------------------------------------------------


@app.command()
@guarded
def cancel(
    ctx: typer.Context,
    name: str,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the operator's cleanup.")
    ] = 120.0,
) -> None:
    """Stop a VideoJob for good (delete it; the final output stays).

    Deleting, not suspending, is what cancel means: the operator's finalizer stops the
    VideoJob's Jobs and removes its intermediate files; the final output is kept while
    spec.output.keepOnDelete is true (the default). Waits until the cleanup is done.
    """
    s = session(ctx)
    kube = s.kube()
    kube.videojob(name)
    kube.delete_videojob(name)
    if not follow.wait_deleted(kube, name, timeout, s.err):
        raise OperatorNotRunning(
            f"VideoJob {kube.namespace}/{name} is marked for deletion but the operator did "
            f"not finish its cleanup within {timeout:g}s; it goes once the operator runs"
        )
    s.out.print(f"videojob {kube.namespace}/{name} cancelled")


@app.command()
@guarded
def get(
    ctx: typer.Context,
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
) -> None:
    """Download the stereo video of a Succeeded VideoJob."""
    s = session(ctx)
    kube = s.kube()
    videojob = kube.videojob(name)
    phase = render.videojob_status(videojob).phase
    if phase is not VideoJobPhase.SUCCEEDED:
        raise CliError(f"VideoJob {name} is {phase.value}: its output exists once Succeeded")
    _download(s, kube, videojob, output)


@app.command("report")
@guarded
def write_report(
    ctx: typer.Context,
    name: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")],
) -> None:
    """Write a self-contained HTML report of a VideoJob: timeline, segments, retries."""
    s = session(ctx)
    kube = s.kube()
    kube.videojob(name)
    with api_errors(f"reading VideoJob {name}"):
        path = report.write_report(kube.api, kube.namespace, name, output)
    s.out.print(f"saved {path}")
