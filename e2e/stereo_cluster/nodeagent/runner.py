"""Run one pod's containers as local processes and report their lives as pod status."""

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

from stereo_cluster.nodeagent.podenv import DataReader, EnvError, container_env, expand
from stereo_cluster.nodeagent.podstatus import ContainerRecord, pod_status
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
    def request_token(
        self, namespace: str, account: str, audiences: list[str], seconds: int, pod: str, uid: str
    ) -> str: ...


@dataclass(frozen=True)
class Launch:
    """How one container starts: its resolved environment and its volume mounts."""

    env: dict[str, str]
    mounts: list[Mount]


def _exit_code(returncode: int) -> int:
    # Like a container runtime: death by signal N is exit code 128 + N.
    return 128 - returncode if returncode < 0 else returncode


class PodRunner(threading.Thread):
    def __init__(self, api: PodApi, pod: dict[str, Any], pods_dir: Path, base_env: dict[str, str]):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.api = api
        self.pod = pod
        self.dir = pods_dir / meta["uid"]
        self.base_env = base_env
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.init = [
            ContainerRecord(c["name"], c.get("image", "")) for c in spec.get("initContainers", [])
        ]
        self.main = [ContainerRecord(c["name"], c.get("image", "")) for c in spec["containers"]]
        self._specs = {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._restart_at: dict[str, float] = {}
        self._stop = threading.Event()
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
        self._stop.set()

    # --- the pod's life --------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # every failure must end in a readable status
            log.exception("pod %s failed in the node agent", self.name)
            self._kill_all(0)
            self._report("Failed", f"node agent error: {exc}")
        finally:
            self.finished.set()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._report("Pending")
        launches = self._prepare()
        if launches is None:
            return self._finish_stopped()
        for record in self.init:
            if not self._run_to_completion(record, launches[record.name]):
                return self._finish_stopped() if self._stop.is_set() else self._report("Failed")
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
                return {
                    name: Launch(
                        env=container_env(self.pod, spec, read, self.base_env),
                        mounts=container_mounts(spec, volumes),
                    )
                    for name, spec in self._specs.items()
                }
            except (EnvError, VolumeError) as exc:
                for record in self.init + self.main:
                    record.waiting_reason, record.message = "CreateContainerConfigError", str(exc)
                self._report("Pending")
                if self._stop.wait(2.0):
                    return None

    def _run_to_completion(self, record: ContainerRecord, launch: Launch) -> bool:
        while not self._stop.is_set():
            self._start(record, launch)
            proc = self._procs.get(record.name)
            while proc is not None and proc.poll() is None and not self._stop.wait(_POLL):
                pass
            if self._stop.is_set():
                return False
            self._collect(record)
            if record.exit_code == 0:
                return True
            if self.restart_policy == "Never":
                return False
            self._stop.wait(self._backoff(record))
            self._prepare_restart(record)
        return False

    def _supervise(self, launches: dict[str, Launch]) -> None:
        while not self._stop.wait(_POLL):
            if self.deadline is not None and time.monotonic() > self.deadline:
                self._kill_all(0)
                return self._report(
                    "Failed", "pod exceeded activeDeadlineSeconds", "DeadlineExceeded"
                )
            changed = False
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
        if proc is None or proc.poll() is None:
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
        logfile = self.dir / f"{record.name}.log"
        try:
            with open(logfile, "ab") as out:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as exc:
            record.terminate(
                127 if isinstance(exc, FileNotFoundError) else 128, "StartError", str(exc)
            )
            return
        self._procs[record.name] = proc
        record.pid, record.started_at = proc.pid, now_rfc3339()
        record.exit_code = record.finished_at = record.reason = record.message = None
        log.info("started %s/%s pid %d: %s", self.name, record.name, proc.pid, argv)

    def _in_mount_namespace(
        self, container: str, argv: list[str], mounts: list[Mount], cwd: Path
    ) -> list[str]:
        """Wrap argv so it starts in a private mount namespace with the volumes bound."""
        spec_file = self.dir / f"{container}.mounts.json"
        spec_file.write_text(json.dumps({"cwd": str(cwd), "mounts": [m.as_dict() for m in mounts]}))
        helper = [sys.executable, "-m", "stereo_cluster.nodeagent.mountns", str(spec_file), "--"]
        return ["unshare", "--mount", "--propagation", "private", "--", *helper, *argv]

    def _collect(self, record: ContainerRecord) -> None:
        proc = self._procs.pop(record.name, None)
        if proc is not None and proc.returncode is not None:
            code = _exit_code(proc.returncode)
            record.terminate(code, message=self._termination_message(record.name, code))

    def _termination_message(self, container: str, exit_code: int) -> str | None:
        """The kubelet's FallbackToLogsOnError: a failed container's log tail as its message."""
        policy = self._specs[container].get("terminationMessagePolicy", "File")
        if exit_code == 0 or policy != "FallbackToLogsOnError":
            return None
        with open(self.dir / f"{container}.log", "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - _MESSAGE_BYTES))
            lines = log_file.read().decode(errors="replace").splitlines()[-_MESSAGE_LINES:]
        return "\n".join(lines) or None

    def _prepare_restart(self, record: ContainerRecord) -> None:
        record.last_exit = record.state().get("terminated")
        record.restart_count += 1

    @staticmethod
    def _backoff(record: ContainerRecord) -> float:
        return min(_MAX_BACKOFF, 1.0 * 2**record.restart_count)

    def _kill_all(self, grace: float) -> None:
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
        status = pod_status(self.pod, phase, self.init, self.main, self.start_time, message)
        if reason:
            status["reason"] = reason
        if not self.api.patch_status(self.pod, status):
            self._stop.set()  # the pod is gone: nothing left to report to


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
