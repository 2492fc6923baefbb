"""Run one pod's containers as local processes and report their lives as pod status.

Unless the pod uses the host's network, its containers start inside the pod's own network
namespace (network.py), with an /etc/hosts naming the Services (names.py) and their probes
(probes.py) deciding readiness and restarts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from stereo_cluster.nodeagent.containerlogs import (
    LogCopier,
    instance_path,
    last_text,
    start_copier,
)
from stereo_cluster.nodeagent.names import RESOLV_CONF, hosts_file, pod_hostname, service_env
from stereo_cluster.nodeagent.network import HOST_IP, HOST_NETWORK, PodNet, PodNetwork
from stereo_cluster.nodeagent.podenv import DataReader, EnvError, container_env, expand
from stereo_cluster.nodeagent.podstatus import ContainerRecord, pod_status
from stereo_cluster.nodeagent.probes import KINDS, ContainerProbes, ProbeTarget
from stereo_cluster.nodeagent.timefmt import now_rfc3339
from stereo_cluster.nodeagent.volumes import Mount, VolumeBuilder, VolumeError, container_mounts

log = logging.getLogger(__name__)
_POLL = 0.2
_MAX_BACKOFF = 30.0
# The kubelet's limits on a termination message taken from the log.
_MESSAGE_BYTES = 2048
_MESSAGE_LINES = 80


class PodApi(Protocol):
    """The calls a runner makes; the agent implements them with the node's credentials."""

    def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> bool: ...
    def delete_now(self, pod: dict[str, Any]) -> None: ...
    def read_data(self) -> DataReader: ...
    def list_services(self) -> list[dict[str, Any]]: ...
    def request_token(
        self, namespace: str, account: str, audiences: list[str], seconds: int, pod: str, uid: str
    ) -> str: ...


@dataclass(frozen=True)
class Launch:
    """How one container starts: its resolved environment and its volume mounts."""

    env: dict[str, str]
    mounts: list[Mount]


# What every container runs from: the project's checkout (editable sources) and its
# interpreter. They must stay visible even under a volume mounted above them.
_HOST_ENVIRONMENT = sorted(
    {
        str(Path(__file__).resolve().parents[3]),
        str(Path(sys.prefix).resolve()),
        str(Path(sys.base_prefix).resolve()),
    }
)


def _exit_code(returncode: int) -> int:
    # Like a container runtime: death by signal N is exit code 128 + N.
    return 128 - returncode if returncode < 0 else returncode


class PodRunner(threading.Thread):
    def __init__(
        self,
        api: PodApi,
        pod: dict[str, Any],
        pods_dir: Path,
        base_env: dict[str, str],
        network: PodNetwork | None = None,
    ):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.api = api
        self.pod = pod
        self.dir = pods_dir / meta["uid"]
        self.base_env = base_env
        spec = pod["spec"]
        # No network: host networking for every pod (the agent could not build pod networks).
        self.networking = network is not None
        self.network = None if spec.get("hostNetwork") else network
        self.net: PodNet = HOST_NETWORK
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [
            ContainerRecord(c["name"], c.get("image", "")) for c in spec.get("initContainers", [])
        ]
        self.main = [ContainerRecord(c["name"], c.get("image", "")) for c in spec["containers"]]
        self._specs = {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}
        self.container_names = tuple(self._specs)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, LogCopier] = {}  # each container's latest instance's log
        self._restart_at: dict[str, float] = {}
        self._probes: dict[str, ContainerProbes] = {}
        self._probe_changed = threading.Event()
        self._killing: set[str] = set()  # containers a failed probe is killing
        # Not `_stop`: that would shadow the method Thread.join calls once the thread ended.
        self._stopping = threading.Event()
        self._grace = 30.0
        self._delete_after_stop = False
        self.start_time = now_rfc3339()
        self.deadline = self._deadline(spec)
        self.finished = threading.Event()

    @staticmethod
    def _deadline(spec: dict[str, Any]) -> float | None:
        seconds = spec.get("activeDeadlineSeconds")
        return time.monotonic() + seconds if seconds else None

    # --- control from the agent ----------------------------------------------------------

    def request_stop(self, grace: float, delete: bool) -> None:
        self._grace = grace
        self._delete_after_stop = delete
        self._stopping.set()

    # --- the pod's life --------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # every failure must end in a readable status
            log.exception("pod %s failed in the node agent", self.name)
            self._kill_all(0)
            self._report("Failed", f"node agent error: {exc}")
        finally:
            if self.network is not None:
                self.network.detach(self.net)
            self.finished.set()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.network is not None:
            self.net = self.network.attach(self.pod["metadata"]["uid"])
        # fieldRefs (status.podIP) and the downward API read the pod's own status.
        status = self.pod.setdefault("status", {})
        status.update(podIP=self.net.ip, podIPs=[{"ip": self.net.ip}], hostIP=HOST_IP)
        self._report("Pending")
        launches = self._prepare()
        if launches is None:
            return self._finish_stopped()
        for record in self.init:
            if not self._run_to_completion(record, launches[record.name]):
                return self._finish_stopped() if self._stopping.is_set() else self._report("Failed")
        for record in self.main:
            self._start(record, launches[record.name])
        self._report("Running")
        self._supervise(launches)

    def _prepare(self) -> dict[str, Launch] | None:
        """Volumes and every container's env, waiting (as the kubelet does) while a
        referenced ConfigMap, Secret or token is not there yet."""
        while True:
            try:
                read = self.api.read_data()
                builder = VolumeBuilder(self.pod, self.dir, read, self.api.request_token)
                volumes = builder.materialize()
                base, name_files = self._names()
                return {
                    name: Launch(
                        env=container_env(self.pod, spec, read, base),
                        mounts=_with_files(container_mounts(spec, volumes), name_files),
                    )
                    for name, spec in self._specs.items()
                }
            except (EnvError, VolumeError) as exc:
                for record in self.init + self.main:
                    record.waiting_reason, record.message = "CreateContainerConfigError", str(exc)
                self._report("Pending")
                if self._stopping.wait(2.0):
                    return None

    def _names(self) -> tuple[dict[str, str], dict[str, Path]]:
        """The base environment plus the Service variables, and the files mounted over
        /etc/hosts (and /etc/resolv.conf with a pod network): from the Services known now.
        Without pod networking neither: no proxy serves the Services."""
        if not self.networking:
            return self.base_env, {}
        services = self.api.list_services()
        files = {"/etc/hosts": self.dir / "etc-hosts"}
        files["/etc/hosts"].write_text(hosts_file(self.pod, self.net.ip, services))
        env = {**self.base_env, **service_env(self.pod, services)}
        if self.net.netns is not None:
            env["HOSTNAME"] = pod_hostname(self.pod)
            files["/etc/resolv.conf"] = self.dir / "etc-resolv.conf"
            files["/etc/resolv.conf"].write_text(RESOLV_CONF)
        return env, files

    def _run_to_completion(self, record: ContainerRecord, launch: Launch) -> bool:
        while not self._stopping.is_set():
            self._start(record, launch)
            proc = self._procs.get(record.name)
            while proc is not None and proc.poll() is None and not self._stopping.wait(_POLL):
                pass
            if self._stopping.is_set():
                return False
            self._collect(record)
            if record.exit_code == 0:
                return True
            if self.restart_policy == "Never":
                return False
            self._stopping.wait(self._backoff(record))
            self._prepare_restart(record)
        return False

    def _supervise(self, launches: dict[str, Launch]) -> None:
        while not self._stopping.wait(_POLL):
            if self.deadline is not None and time.monotonic() > self.deadline:
                self._kill_all(0)
                return self._report(
                    "Failed", "pod exceeded activeDeadlineSeconds", "DeadlineExceeded"
                )
            changed = self._probe_changed.is_set()
            self._probe_changed.clear()
            for record in self.main:
                changed |= self._step(record, launches[record.name])
            if all(r.exit_code is not None for r in self.main) and not self._restart_at:
                ok = all(r.exit_code == 0 for r in self.main)
                return self._report("Succeeded" if ok else "Failed")
            if changed:
                self._report("Running")
        self._finish_stopped()

    def _step(self, record: ContainerRecord, launch: Launch) -> bool:
        """Advance one container: collect an exit, schedule or perform a restart."""
        if record.name in self._restart_at:
            if time.monotonic() < self._restart_at[record.name]:
                return False
            del self._restart_at[record.name]
            self._prepare_restart(record)
            self._start(record, launch)
            return True
        proc = self._procs.get(record.name)
        if proc is None:
            return False
        if proc.poll() is None:
            self._kill_if_unhealthy(record, proc)
            return False
        self._collect(record)
        again = self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and record.exit_code != 0
        )
        if again:
            self._restart_at[record.name] = time.monotonic() + self._backoff(record)
        return True

    # --- processes ---------------------------------------------------------------------------

    def _start(self, record: ContainerRecord, launch: Launch) -> None:
        spec = self._specs[record.name]
        env = launch.env
        argv = [expand(a, env) for a in spec.get("command", []) + spec.get("args", [])]
        if not spec.get("command"):
            # Images are not pulled here, so an image's own entrypoint is unknown.
            record.terminate(
                128, "ContainerCannotRun", "the local node agent needs an explicit command"
            )
            return
        cwd = Path(spec.get("workingDir") or self.dir)
        if launch.mounts:
            argv, cwd = self._in_mount_namespace(record.name, argv, launch.mounts, cwd), self.dir
        argv = self.net.wrap(argv)
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            record.terminate(
                127 if isinstance(exc, FileNotFoundError) else 128, "StartError", str(exc)
            )
            return
        assert proc.stdout is not None and proc.stderr is not None
        streams = {"stdout": proc.stdout, "stderr": proc.stderr}
        self._logs[record.name] = start_copier(self.dir, record.name, record.restart_count, streams)
        self._procs[record.name] = proc
        record.pid, record.started_at = proc.pid, now_rfc3339()
        record.exit_code = record.finished_at = record.reason = record.message = None
        log.info("started %s/%s pid %d: %s", self.name, record.name, proc.pid, argv)
        if any(spec.get(field) for field in KINDS.values()):
            ports = {
                p["name"]: int(p["containerPort"]) for p in spec.get("ports", []) if "name" in p
            }
            target = ProbeTarget(self.net.ip, ports, proc.pid, env)
            probes = ContainerProbes(spec, target, self._probe_changed.set)
            self._probes[record.name] = probes
            probes.start()

    def _kill_if_unhealthy(self, record: ContainerRecord, proc: subprocess.Popen[bytes]) -> None:
        """A liveness or startup probe gave up: stop the container (its exit is then
        collected and the restart policy applies, as after any other exit)."""
        probes = self._probes.get(record.name)
        if probes is None or probes.failure is None or record.name in self._killing:
            return
        self._killing.add(record.name)
        spec = self._specs[record.name]
        probe: dict[str, Any] = spec.get(KINDS[probes.failed_kind or "liveness"]) or {}
        grace = probe.get("terminationGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        log.info("%s/%s: %s; killing it", self.name, record.name, probes.failure)
        threading.Thread(target=_stop_group, args=(proc, float(grace)), daemon=True).start()

    def _in_mount_namespace(
        self, container: str, argv: list[str], mounts: list[Mount], cwd: Path
    ) -> list[str]:
        """Wrap argv so it starts in a private mount namespace with the volumes bound."""
        spec_file = self.dir / f"{container}.mounts.json"
        # Its own UTS namespace too, so the pod's hostname is its own.
        hostname = pod_hostname(self.pod) if self.net.netns is not None else None
        spec_file.write_text(
            json.dumps(
                {
                    "cwd": str(cwd),
                    "mounts": [m.as_dict() for m in mounts],
                    "hostname": hostname,
                    "keep": _HOST_ENVIRONMENT,
                }
            )
        )
        helper = [sys.executable, "-m", "stereo_cluster.nodeagent.mountns", str(spec_file), "--"]
        uts = ["--uts"] if hostname else []
        return ["unshare", "--mount", *uts, "--propagation", "private", "--", *helper, *argv]

    def _collect(self, record: ContainerRecord) -> None:
        proc = self._procs.pop(record.name, None)
        probes = self._probes.pop(record.name, None)
        if probes is not None:
            probes.stop()
        self._killing.discard(record.name)
        if proc is not None and proc.returncode is not None:
            copier = self._logs.get(record.name)
            if copier is not None:
                copier.wait(timeout=2.0)  # the last lines, before the message is taken
            code = _exit_code(proc.returncode)
            message = self._termination_message(record, code)
            if message is None and probes is not None:
                message = probes.failure
            record.terminate(code, message=message)

    def _termination_message(self, record: ContainerRecord, exit_code: int) -> str | None:
        """The kubelet's FallbackToLogsOnError: a failed container's log tail as its message."""
        policy = self._specs[record.name].get("terminationMessagePolicy", "File")
        if exit_code == 0 or policy != "FallbackToLogsOnError":
            return None
        path = instance_path(self.dir, record.name, record.restart_count)
        return last_text(path, _MESSAGE_BYTES, _MESSAGE_LINES) or None

    def log_copying(self, container: str, instance: int) -> bool:
        """Whether that instance of the container may still add to its log (`kubectl logs
        -f` follows it until then); called from the log server's threads."""
        copier = self._logs.get(container)
        path = instance_path(self.dir, container, instance)
        return copier is not None and copier.path == path and not copier.done.is_set()

    def _prepare_restart(self, record: ContainerRecord) -> None:
        record.last_exit = record.state().get("terminated")
        record.restart_count += 1

    @staticmethod
    def _backoff(record: ContainerRecord) -> float:
        return min(_MAX_BACKOFF, 1.0 * 2**record.restart_count)

    def _kill_all(self, grace: float) -> None:
        for probes in self._probes.values():
            probes.stop()
        for proc in self._procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self._procs.values()):
            time.sleep(0.05)
        for proc in self._procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
            proc.wait()
        for record in self.init + self.main:
            if record.name in self._procs:
                self._collect(record)

    def _finish_stopped(self) -> None:
        # As the kubelet does: containers stopped, a terminal phase reported, then the
        # deletion confirmed so the API server can remove the object.
        self._kill_all(self._grace)
        ok = all(r.exit_code == 0 for r in self.main)
        self._report("Succeeded" if ok else "Failed", "stopped by the node agent")
        if self._delete_after_stop:
            self.api.delete_now(self.pod)

    # --- status ----------------------------------------------------------------------------------

    def _report(self, phase: str, message: str | None = None, reason: str | None = None) -> None:
        for record in self.main:
            probes = self._probes.get(record.name)
            record.probe_started = probes is None or probes.started.is_set()
            record.probe_ready = probes is None or probes.ready
        status = pod_status(
            self.pod, phase, self.init, self.main, self.start_time, self.net.ip, message
        )
        if reason:
            status["reason"] = reason
        if not self.api.patch_status(self.pod, status):
            self._stopping.set()  # the pod is gone: nothing left to report to


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; the supervisor collects the exit."""
    _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)


def _with_files(mounts: list[Mount], files: dict[str, Path]) -> list[Mount]:
    """The pod's own /etc files, except where the container mounts something there itself."""
    taken = {m.target for m in mounts}
    extra = [
        Mount(str(src), dst, read_only=False) for dst, src in files.items() if dst not in taken
    ]
    return [*mounts, *extra]
