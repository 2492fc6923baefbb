"""What the operator reads from and deletes in a workspace, through stereo_storage.

Reads: the split plan (once the split Job succeeded), a segment's output (when no storage
event came in time), the final output. Deletes: a deleted VideoJob's intermediate files.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from pydantic import ValidationError

from stereo_operator.segments import StoredObject
from stereo_storage import ObjectStat, ObjectStore, StorageConfig, StorageError, open_store
from stereo_types.layout import split_uri
from stereo_types.plan import SplitPlan
from stereo_types.seams import SeamScore

log = logging.getLogger(__name__)

# Plans are immutable once written (the split writes them last, once), so a small cache
# spares re-reading one for every tick that creates a batch of Segments.
_PLAN_CACHE_SIZE = 64


class PlanUnreadable(Exception):
    """The plan is missing or is not a SplitPlan: the split Job broke its contract."""


def stored_object(stat: ObjectStat) -> StoredObject:
    generation = int(stat.generation) if stat.generation and stat.generation.isdigit() else None
    return StoredObject(
        uri=stat.uri, size=stat.size, etag=stat.etag, generation=generation, updated=stat.updated
    )


class Workspace:
    """One store per scheme, shared by every VideoJob."""

    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()
        self._stores: dict[str, ObjectStore] = {}
        self._plans: OrderedDict[str, SplitPlan] = OrderedDict()
        self._lock = threading.Lock()

    def store(self, uri: str) -> ObjectStore:
        scheme = split_uri(uri)[0]
        with self._lock:
            if scheme not in self._stores:
                self._stores[scheme] = open_store(uri, self.config)
            return self._stores[scheme]

    def stat(self, uri: str) -> StoredObject | None:
        """The object, or None when absent. StorageError (incl. Unavailable) propagates."""
        found = self.store(uri).stat(uri)
        return stored_object(found) if found is not None else None

    def read_plan(self, uri: str) -> SplitPlan:
        with self._lock:
            cached = self._plans.get(uri)
            if cached is not None:
                self._plans.move_to_end(uri)
                return cached
        with tempfile.TemporaryDirectory(prefix="stereo-plan-") as tmp:
            local = Path(tmp) / "plan.json"
            try:
                self.store(uri).download_file(uri, local)
            except StorageError as exc:
                if exc.retryable:
                    raise
                raise PlanUnreadable(f"cannot read the split plan {uri}: {exc}") from exc
            try:
                plan = SplitPlan.model_validate_json(local.read_bytes())
            except ValidationError as exc:
                raise PlanUnreadable(f"the split plan {uri} is invalid: {exc}") from exc
        with self._lock:
            self._plans[uri] = plan
            while len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    def read_seams(self, uri: str) -> SeamScore | None:
        """The seam score the assemble Job published; None where it published none (no
        engine wrote depth traces) or one this operator cannot read."""
        if self.stat(uri) is None:
            return None
        with tempfile.TemporaryDirectory(prefix="stereo-seams-") as tmp:
            local = Path(tmp) / "seams.json"
            self.store(uri).download_file(uri, local)
            try:
                return SeamScore.model_validate_json(local.read_bytes())
            except ValidationError as exc:
                log.warning("ignoring the seam score %s: %s", uri, exc)
                return None

    def forget_plan(self, uri: str) -> None:
        with self._lock:
            self._plans.pop(uri, None)

    def delete_intermediates(self, prefix_uri: str, keep_uri: str | None) -> int:
        """Delete everything under prefix_uri except keep_uri (the final output).

        Sub-folders that do not hold the kept object go by prefix (one listing and batched
        deletes each); the rest object by object, so the kept one and names it is a prefix of
        ('final.mp4' of 'final.mp4.part') are told apart exactly.
        """
        folder = prefix_uri.rstrip("/") + "/"
        store = self.store(folder)
        if keep_uri is None or not keep_uri.startswith(folder):
            return store.delete_prefix(folder)
        kept_folder = keep_uri[len(folder) :].rpartition("/")[0]
        deleted = 0
        folders: set[str] = set()
        for stat in list(store.list_prefix(folder)):
            relative = stat.uri[len(folder) :]
            head, sep, _ = relative.partition("/")
            if stat.uri == keep_uri:
                continue
            if sep and not (kept_folder + "/").startswith(head + "/"):
                folders.add(head + "/")
            else:
                store.delete(stat.uri)
                deleted += 1
        for child in sorted(folders):
            deleted += store.delete_prefix(folder + child)
        return deleted

    def delete_object(self, uri: str) -> None:
        """Delete exactly `uri`; one already gone is fine."""
        self.store(uri).delete(uri)
