"""Pod volumes materialized as host directories, and the mounts each container sees.

ConfigMap, Secret, downwardAPI, projected (service-account token, ConfigMap, Secret,
downwardAPI), emptyDir and hostPath volumes are written under the pod's directory; a
container then sees them at their mountPaths inside a private mount namespace (mountns.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stereo_cluster.nodeagent.podenv import DataReader, EnvError, field_value

# (namespace, service account, audiences, expirationSeconds, pod name, pod uid) -> token
TokenRequester = Callable[[str, str, list[str], int, str, str], str]

_DEFAULT_MODE = 0o644
_TOKEN_SECONDS = 3607


class VolumeError(ValueError):
    """A volume that cannot be set up yet or at all (the kubelet's FailedMount)."""


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _write(directory: Path, relative: str, content: str | bytes, mode: int | None) -> None:
    path = (directory / relative).resolve()
    if directory.resolve() not in path.parents:
        raise VolumeError(f"volume item path {relative!r} escapes the volume")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode if mode is not None else _DEFAULT_MODE)


def _write_keyed(
    directory: Path, kind: str, source: Mapping[str, Any], namespace: str, read: DataReader
) -> None:
    """A ConfigMap or Secret's keys (or just its `items`) as files."""
    name = source.get("name") or source.get("secretName")
    data = read(kind, namespace, str(name))
    if data is None:
        if source.get("optional"):
            return
        raise VolumeError(f"{kind} {namespace}/{name} not found")
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"{kind} {namespace}/{name} has no key {item['key']!r}")
        mode = item.get("mode", source.get("defaultMode"))
        _write(directory, item["path"], data[item["key"]], mode)


def _write_downward(directory: Path, pod: Mapping[str, Any], source: Mapping[str, Any]) -> None:
    for item in source.get("items", []):
        if "fieldRef" not in item:
            raise VolumeError("downwardAPI: only fieldRef items are supported")
        try:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        except EnvError as exc:
            raise VolumeError(str(exc)) from None
        _write(directory, item["path"], value, item.get("mode", source.get("defaultMode")))


class VolumeBuilder:
    def __init__(
        self, pod: Mapping[str, Any], pod_dir: Path, read: DataReader, request_token: TokenRequester
    ) -> None:
        self.pod = pod
        self.root = pod_dir / "volumes"
        self.read = read
        self.request_token = request_token
        self.namespace = pod["metadata"]["namespace"]

    def materialize(self) -> dict[str, Path]:
        """Write every volume of the pod; returns volume name -> host path."""
        return {v["name"]: self._volume(v) for v in self.pod["spec"].get("volumes", [])}

    def _volume(self, volume: Mapping[str, Any]) -> Path:
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            return path
        directory = self.root / volume["name"]
        directory.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            return directory
        if "configMap" in volume:
            _write_keyed(directory, "configmap", volume["configMap"], self.namespace, self.read)
        elif "secret" in volume:
            _write_keyed(directory, "secret", volume["secret"], self.namespace, self.read)
        elif "downwardAPI" in volume:
            _write_downward(directory, self.pod, volume["downwardAPI"])
        elif "projected" in volume:
            self._projected(directory, volume["projected"])
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(f"volume {volume['name']}: {kinds} is not supported here")
        return directory

    def _projected(self, directory: Path, projected: Mapping[str, Any]) -> None:
        for source in projected.get("sources", []):
            if "serviceAccountToken" in source:
                self._token(directory, source["serviceAccountToken"], projected.get("defaultMode"))
            elif "configMap" in source:
                _write_keyed(directory, "configmap", source["configMap"], self.namespace, self.read)
            elif "secret" in source:
                _write_keyed(directory, "secret", source["secret"], self.namespace, self.read)
            elif "downwardAPI" in source:
                _write_downward(directory, self.pod, source["downwardAPI"])
            else:
                raise VolumeError(f"projected source {sorted(source)} is not supported")

    def _token(self, directory: Path, source: Mapping[str, Any], mode: int | None) -> None:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        audiences = [source["audience"]] if source.get("audience") else []
        token = self.request_token(
            self.namespace,
            spec.get("serviceAccountName", "default"),
            audiences,
            int(source.get("expirationSeconds", _TOKEN_SECONDS)),
            meta["name"],
            meta["uid"],
        )
        _write(directory, source["path"], token, mode if mode is not None else 0o600)


def container_mounts(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> list[Mount]:
    mounts = []
    for vm in container.get("volumeMounts", []):
        if vm["name"] not in volumes:
            raise VolumeError(f"volumeMount {vm['name']!r} names no volume of the pod")
        source = volumes[vm["name"]]
        if vm.get("subPath"):
            source = source / vm["subPath"]
        mounts.append(Mount(str(source), vm["mountPath"], bool(vm.get("readOnly"))))
    return mounts
