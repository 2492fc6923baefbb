"""The cluster as stereoctl sees it: connection, API checks, and the objects it reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from stereo_types import labels
from stereo_types.names import GROUP, SEGMENT_PLURAL, VERSION, VIDEOJOB_PLURAL
from stereoctl.errors import CliError, ClusterUnreachable, CrdsMissing, InputError, NotFound

JsonDict = dict[str, Any]

# (connect, read) seconds for quick checks; a dead address must not hang the CLI.
PROBE_TIMEOUT = (5.0, 15.0)
# Label keys the operator and the Job controller put on Jobs and pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclass(frozen=True)
class Target:
    """Which cluster: a kubeconfig file (None: $KUBECONFIG or ~/.kube/config) and context."""

    kubeconfig: str | None = None
    context: str | None = None


def _load(target: Target) -> tuple[client.ApiClient, str | None]:
    """The API client and the context's namespace."""
    try:
        contexts, active = config.list_kube_config_contexts(config_file=target.kubeconfig)
        if target.context:
            active = next((c for c in contexts if c["name"] == target.context), None)
            if active is None:
                raise ClusterUnreachable(f"context {target.context!r} is not in the kubeconfig")
        api = config.new_client_from_config(config_file=target.kubeconfig, context=target.context)
    except (ConfigException, OSError) as exc:
        where = target.kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise ClusterUnreachable(f"no usable kubeconfig ({where}): {exc}") from None
    namespace = (active or {}).get("context", {}).get("namespace")
    return api, namespace


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn an API failure into one line that says what was being done."""
    try:
        yield
    except ApiException as exc:
        raise _translate(exc, what) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnreachable(f"{what}: the API server did not answer ({exc})") from None


def _reason(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message")
    except ValueError:
        message = None
    return str(message or exc.reason or exc.status)


def _translate(exc: ApiException, what: str) -> CliError:
    reason = _reason(exc)
    if exc.status == 404:
        return NotFound(f"{what}: {reason}")
    if exc.status in (400, 409, 422):
        return InputError(f"{what}: {reason}")
    if exc.status in (401, 403):
        return CliError(f"{what}: not allowed: {reason}")
    return CliError(f"{what}: {reason}")


class Kube:
    """The typed calls stereoctl makes, in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)

    def api_apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    @classmethod
    def connect(cls, target: Target, namespace: str | None, fallback_namespace: str | None) -> Kube:
        """Connect and check that the API server answers; namespace: flag, context, config."""
        api, context_namespace = _load(target)
        kube = cls(api, namespace or context_namespace or fallback_namespace or "default")
        kube.check_reachable()
        return kube

    def check_reachable(self) -> None:
        try:
            client.VersionApi(self.api).get_code(_request_timeout=PROBE_TIMEOUT)
        except ApiException as exc:
            if exc.status in (401, 403):
                raise ClusterUnreachable(
                    f"the cluster at {self.host} refused the credentials: {_reason(exc)}"
                ) from None
            raise ClusterUnreachable(f"the cluster at {self.host} answered {exc.status}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnreachable(
                f"no cluster reachable at {self.host}: {_root_cause(exc)}"
            ) from None

    def require_crds(self) -> None:
        """The API server must serve VideoJobs and Segments (discovery, not a guess)."""
        with api_errors(f"reading the API resources of {self.host}"):
            try:
                found = self.custom.get_api_resources(
                    GROUP, VERSION, _request_timeout=PROBE_TIMEOUT
                )
                served = {resource.name for resource in found.resources}
            except ApiException as exc:
                if exc.status != 404:
                    raise
                served = set()
        missing = sorted({VIDEOJOB_PLURAL, SEGMENT_PLURAL} - served)
        if missing:
            raise CrdsMissing(
                f"the cluster at {self.host} does not serve {GROUP}/{VERSION} "
                f"({', '.join(missing)}): install the CRDs (kubectl apply -f crds/, "
                "or the Helm chart charts/stereo-operator)"
            )

    # -- VideoJobs and Segments ---------------------------------------------------------------

    def create_videojob(self, body: JsonDict) -> JsonDict:
        name = body["metadata"]["name"]
        with api_errors(f"creating VideoJob {self.namespace}/{name}"):
            created: JsonDict = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, VIDEOJOB_PLURAL, body
            )
        return created

    def videojob(self, name: str) -> JsonDict:
        with api_errors(f"VideoJob {self.namespace}/{name}"):
            found: JsonDict = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, VIDEOJOB_PLURAL, name
            )
        return found

    def videojobs(self) -> list[JsonDict]:
        with api_errors(f"listing VideoJobs in {self.namespace}"):
            items: list[JsonDict] = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, VIDEOJOB_PLURAL
            )["items"]
        return sorted(items, key=lambda vj: vj["metadata"]["creationTimestamp"])

    def delete_videojob(self, name: str) -> None:
        with api_errors(f"deleting VideoJob {self.namespace}/{name}"):
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, VIDEOJOB_PLURAL, name
            )

    def segments(self, videojob: JsonDict) -> list[JsonDict]:
        """The Segments of this incarnation of the VideoJob, by index."""
        uid = videojob["metadata"]["uid"]
        with api_errors(f"listing the Segments of {videojob['metadata']['name']}"):
            items: list[JsonDict] = self.custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                SEGMENT_PLURAL,
                label_selector=f"{labels.VIDEOJOB_UID}={uid}",
            )["items"]
        return sorted(items, key=lambda s: s["spec"]["index"])

    # -- Jobs, pods, logs ------------------------------------------------------------------------

    def job_names(self, videojob: JsonDict, role: str) -> list[str]:
        """Names of the VideoJob's Jobs of one role (split, inference, assemble), oldest first."""
        selector = f"{labels.VIDEOJOB_UID}={videojob['metadata']['uid']},{labels.ROLE}={role}"
        with api_errors(f"listing the {role} Jobs of {videojob['metadata']['name']}"):
            jobs = self.batch.list_namespaced_job(self.namespace, label_selector=selector).items
        jobs.sort(key=lambda job: job.metadata.creation_timestamp)
        return [job.metadata.name for job in jobs]

    def pod_names(self, job_name: str) -> list[str]:
        with api_errors(f"listing the pods of Job {job_name}"):
            pods = self.core.list_namespaced_pod(
                self.namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}"
            ).items
        pods.sort(key=lambda pod: pod.metadata.creation_timestamp)
        return [pod.metadata.name for pod in pods]

    def pod_log(self, pod: str) -> str:
        with api_errors(f"reading the log of pod {self.namespace}/{pod}"):
            text: str = self.core.read_namespaced_pod_log(
                pod, self.namespace, _request_timeout=PROBE_TIMEOUT
            )
        return text


def _root_cause(exc: BaseException) -> str:
    seen: BaseException = exc
    while True:
        reason = getattr(seen, "reason", None)
        nested = reason if isinstance(reason, BaseException) else seen.__cause__
        if nested is None or nested is seen:
            return str(seen)
        seen = nested
