"""Uploads and downloads through the stereo_storage adapters, with a rich progress bar."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from stereo_storage import ObjectNotFound, StorageConfig, StorageError, open_store
from stereoctl.errors import NotFound, StoreError

UPLOADS_DIR = "_uploads"
"""Folder of uploaded sources under the store root; '_' cannot start a namespace, so it never
meets the operator's <root>/<namespace>/ folders."""


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def upload(path: Path, uri: str, config: StorageConfig, console: Console) -> None:
    with _progress(console) as progress:
        task = progress.add_task(f"upload {path.name}", total=path.stat().st_size)
        try:
            with open_store(uri, config) as store:
                store.upload_file(path, uri, progress=lambda n: progress.advance(task, n))
        except StorageError as exc:
            raise StoreError(f"upload of {path} to {uri} failed: {exc}") from None


def download(uri: str, path: Path, config: StorageConfig, console: Console) -> None:
    try:
        with open_store(uri, config) as store:
            stat = store.stat(uri)
            if stat is None:
                raise NotFound(f"the output {uri} is not in the store")
            with _progress(console) as progress:
                task = progress.add_task(f"download {path.name}", total=stat.size)
                store.download_file(uri, path, progress=lambda n: progress.advance(task, n))
    except ObjectNotFound:
        raise NotFound(f"the output {uri} is not in the store") from None
    except StorageError as exc:
        raise StoreError(f"download of {uri} to {path} failed: {exc}") from None
