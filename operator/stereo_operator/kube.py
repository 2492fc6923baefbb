"""The operator's writes (and its few reads) through the `kubernetes` client.

Creates treat 409 AlreadyExists as success and deletes treat 404 as success, so every action
can be repeated: a handler that runs twice, or a restarted operator, changes nothing twice.
Status goes through the status subresource as JSON merge patches of the changed fields only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from stereo_operator import labels, metrics
from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
# Enough of a log tail to explain a failure without bloating a status.
MAX_TERMINATION_MESSAGE = 2048


def load_configuration(kubeconfig: str | None) -> client.Configuration:
    """Client settings from a kubeconfig file, else in-cluster, else the default kubeconfig."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(client_configuration=configuration)
    return configuration


def api_client(kubeconfig: str | None, pool_size: int) -> client.ApiClient:
    configuration = load_configuration(kubeconfig)
    # One connection per writer thread, or urllib3 discards (and warns about) the extras.
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def _count(verb: str, resource: str, code: int) -> None:
    metrics.API_REQUESTS.labels(verb=verb, resource=resource, code=str(code)).inc()


class Kube:
    """Thin, idempotent wrappers; one method is one API request."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.coordination = client.CoordinationV1Api(api)

    # -- Jobs --------------------------------------------------------------------------------

    def create_job(self, manifest: Mapping[str, Any]) -> bool:
        """True if created, False if it already existed."""
        namespace = manifest["metadata"]["namespace"]
        try:
            self.batch.create_namespaced_job(namespace, manifest)
        except ApiException as exc:
            _count("create", "jobs", exc.status)
            if exc.status == 409:
                return False
            raise
        _count("create", "jobs", 201)
        return True

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and (in the background) its pods; False if it was already gone."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            _count("delete", "jobs", exc.status)
            if exc.status == 404:
                return False
            raise
        _count("delete", "jobs", 200)
        return True

    def delete_jobs_of(self, namespace: str, videojob_uid: str) -> None:
        """Every Job of a VideoJob, in one request. Foreground: each Job object stays until its
        pods are gone, so 'no Jobs left' means no process still writes to the workspace."""
        try:
            self.batch.delete_collection_namespaced_job(
                namespace,
                label_selector=labels.videojob_selector(videojob_uid),
                propagation_policy="Foreground",
            )
        except ApiException as exc:
            _count("deletecollection", "jobs", exc.status)
            raise
        _count("deletecollection", "jobs", 200)

    def termination_message(self, namespace: str, job_name: str) -> str | None:
        """The last pod's termination message (its log tail on failure), if any."""
        try:
            pods = self.core.list_namespaced_pod(
                namespace, label_selector=f"{labels.JOB_NAME}={job_name}"
            )
        except ApiException as exc:
            _count("list", "pods", exc.status)
            log.warning("cannot read the pods of Job %s/%s: %s", namespace, job_name, exc.reason)
            return None
        _count("list", "pods", 200)
        messages: list[tuple[str, str]] = []
        for pod in pods.items:
            for cs in pod.status.container_statuses or []:
                term = cs.state.terminated if cs.state else None
                if term is not None and term.exit_code != 0 and term.message:
                    stamp = str(term.finished_at or "")
                    messages.append((stamp, term.message.strip()))
        if not messages:
            return None
        text = max(messages)[1]
        return text[-MAX_TERMINATION_MESSAGE:]

    # -- Segments ----------------------------------------------------------------------------

    def create_segment(self, manifest: Mapping[str, Any]) -> bool:
        namespace = manifest["metadata"]["namespace"]
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, SEGMENT_PLURAL, manifest
            )
        except ApiException as exc:
            _count("create", "segments", exc.status)
            if exc.status == 409:
                return False
            raise
        _count("create", "segments", 201)
        return True

    def patch_segment_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> bool:
        """Merge-patch status; with resource_version, False if the Segment changed since."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, SEGMENT_PLURAL, name, body, _content_type=MERGE_PATCH
            )
        except ApiException as exc:
            _count("patch", "segments/status", exc.status)
            if exc.status in (404, 409):
                return False
            raise
        _count("patch", "segments/status", 200)
        return True

    # -- VideoJobs ---------------------------------------------------------------------------

    def patch_videojob_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                VIDEOJOB_PLURAL,
                name,
                {"status": dict(status)},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            _count("patch", "videojobs/status", exc.status)
            if exc.status == 404:
                return False
            raise
        _count("patch", "videojobs/status", 200)
        return True

    # -- Heartbeat (liveness) ----------------------------------------------------------------

    def renew_lease(
        self, namespace: str, name: str, holder: str, renew_time: datetime, duration: int
    ) -> None:
        """Set the heartbeat Lease's renewTime, creating the Lease the first time."""
        spec = {
            "holderIdentity": holder,
            "renewTime": renew_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseDurationSeconds": duration,
        }
        try:
            self.coordination.patch_namespaced_lease(
                name, namespace, {"spec": spec}, _content_type=MERGE_PATCH
            )
            _count("patch", "leases", 200)
            return
        except ApiException as exc:
            _count("patch", "leases", exc.status)
            if exc.status != 404:
                raise
        body = {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
        try:
            self.coordination.create_namespaced_lease(namespace, body)
        except ApiException as exc:
            _count("create", "leases", exc.status)
            if exc.status != 409:  # another replica made it: the next renewal patches it
                raise
            return
        _count("create", "leases", 201)

    # -- Peering -----------------------------------------------------------------------------

    def peering_status(self, name: str, namespace: str | None) -> dict[str, Any]:
        """The peers kopf lists in a peering object ({} when there is none)."""
        try:
            if namespace:
                body = self.custom.get_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", name
                )
            else:
                body = self.custom.get_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", name
                )
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return dict(body.get("status") or {})

    def ensure_peering(self, name: str, namespace: str | None) -> None:
        """kopf only patches its peering object; make sure there is one to patch."""
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering" if namespace else "ClusterKopfPeering",
            "metadata": {"name": name},
        }
        try:
            if namespace:
                self.custom.create_namespaced_custom_object(
                    "kopf.dev", "v1", namespace, "kopfpeerings", body
                )
            else:
                self.custom.create_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", body
                )
        except ApiException as exc:
            if exc.status != 409:
                raise
