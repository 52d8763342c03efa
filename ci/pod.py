"""Run an image the way a Kubernetes Deployment's container says, without a cluster.

podman cannot run containers where the tests run, so `podman kube play` is out; this is the
image tier's own runtime: buildah's storage for the image's root filesystem, util-linux for
the rest (decision 0029). Everything it applies is read from the rendered Deployment:

- the command and args (else the image's entrypoint and cmd, as the kubelet does);
- the environment (the image's, then the container's literal values over it);
- the user and group (`runAsUser`, `runAsGroup`, else the image's user), refusing to start
  a root user when `runAsNonRoot` is set, as the kubelet does;
- a read-only root filesystem when `readOnlyRootFilesystem` is set, with a fresh tmpfs at
  each `emptyDir` mount; no new privileges, no supplementary groups;
- a network namespace of its own (loopback only) with the hosts file the kubelet would
  mount: the service is reached on the declared port from inside it, so a port the image
  does not serve is refused.

Not emulated: seccomp profiles, resource limits, capabilities beyond those a non-root user
lacks. Servers it starts are stopped by PID by the context that started them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ci.golden_path import stop

#: What runs inside the new namespaces (as root, before the service): loopback up, the
#: root filesystem and its mounts, then exec into the service as its user.
_RUNTIME = r"""
import fcntl, json, os, socket, struct, subprocess, sys
spec = json.loads(sys.argv[1])
if spec["loopback"]:  # a network namespace of its own: bring its loopback up
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(sock, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(sock, 0x8914, struct.pack("16sH", b"lo", flags | 1))
def mount(*args):
    subprocess.run(["mount", *args], check=True)
mount("--make-rprivate", "/")
root = spec["root"]
mount("--bind", spec["rootfs"], root)
for target in spec["tmpfs"]:
    os.makedirs(root + target, exist_ok=True)
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", root + target)
# What every container runtime gives a container: /proc of its own process namespace, a /dev
# with the usual devices and a /dev/shm (BentoML's workers need /dev/null and semaphores).
os.makedirs(root + "/proc", exist_ok=True)
mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", root + "/proc")
os.makedirs(root + "/dev", exist_ok=True)
mount("-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", root + "/dev")
for device in ("null", "zero", "full", "random", "urandom", "tty"):
    open(root + "/dev/" + device, "a").close()
    mount("--bind", "/dev/" + device, root + "/dev/" + device)
os.makedirs(root + "/dev/shm")
mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", root + "/dev/shm")
# What the kubelet mounts into every container: the pod's own hosts file.
for name, source in spec["etc"].items():
    target = root + "/etc/" + name
    if not os.path.exists(target):
        open(target, "a").close()
    mount("--bind", source, target)
if spec["read_only"]:
    mount("-o", "remount,bind,ro", root)
os.execvpe("setpriv", [
    "setpriv", "--no-new-privs", "--clear-groups",
    "unshare", f"--root={root}", f"--wd={spec['workdir']}",
    f"--setgid={spec['gid']}", f"--setuid={spec['uid']}", "--", *spec["argv"],
], spec["env"])
"""

#: One HTTP call made from inside the pod's network namespace; prints [status, body].
_CALL = r"""
import json, sys, urllib.error, urllib.request
url, body = sys.argv[1], sys.argv[2]
data = body.encode() if body else None
request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.dumps([response.status, response.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
except OSError as error:
    print(json.dumps([None, str(error)]))
"""


#: kube-proxy's part, for one Service port: accept on `listen`, relay to `target` (loopback).
_FORWARD = r"""
import socket, sys, threading
listen, target = int(sys.argv[1]), int(sys.argv[2])
server = socket.create_server(("127.0.0.1", listen))
def relay(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
    threading.Thread(target=relay, args=(upstream, client), daemon=True).start()
"""


class PodRefused(RuntimeError):
    """The runtime would not start the container, as the kubelet would not."""


@dataclass(frozen=True)
class ContainerSpec:
    """What the Deployment says about its (first) container, with the image's defaults."""

    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    workdir: str
    read_only: bool
    tmpfs: list[str]
    ports: dict[str, int]
    probes: dict[str, tuple[str, int]]  # probe kind: (path, port)
    startup_seconds: float

    @classmethod
    def read(cls, deployment: Mapping[str, Any], image: Mapping[str, Any]) -> ContainerSpec:
        """From a rendered Deployment and the image's OCI config (`buildah inspect`'s)."""
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        user, _, group = str(image.get("User") or "0").partition(":")
        uid = int(security.get("runAsUser", user))
        gid = int(security.get("runAsGroup", group or 0))
        if security.get("runAsNonRoot") and uid == 0:
            raise PodRefused("container has runAsNonRoot and image will run as root")
        command = container.get("command")
        argv = [
            *(command or image.get("Entrypoint") or []),
            *(container.get("args") or ([] if command else image.get("Cmd") or [])),
        ]
        env = dict(item.split("=", 1) for item in image.get("Env") or [])
        for variable in container.get("env", []):
            if "value" not in variable:
                raise PodRefused(f"env {variable['name']}: only literal values can be run here")
            env[variable["name"]] = str(variable["value"])
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        tmpfs = []
        for mount in container.get("volumeMounts", []):
            if "emptyDir" not in volumes.get(mount["name"], {}):
                raise PodRefused(f"volume {mount['name']}: only emptyDir can be run here")
            tmpfs.append(mount["mountPath"])
        ports = {
            port.get("name", str(port["containerPort"])): int(port["containerPort"])
            for port in container.get("ports", [])
        }
        probes = {}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container.get(kind, {}).get("httpGet")
            if get:
                port = get["port"]
                probes[kind] = (get["path"], ports[port] if isinstance(port, str) else int(port))
        startup = container.get("startupProbe") or container.get("readinessProbe") or {}
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        return cls(
            argv=argv,
            env=env,
            uid=uid,
            gid=gid,
            workdir=container.get("workingDir") or image.get("WorkingDir") or "/",
            read_only=bool(security.get("readOnlyRootFilesystem")),
            tmpfs=tmpfs,
            ports=ports,
            probes=probes,
            startup_seconds=float(budget),
        )


@dataclass
class Pod:
    """A container running as its Deployment says; HTTP calls go into its network namespace."""

    process: subprocess.Popen[bytes]
    spec: ContainerSpec
    image: dict[str, Any]  # the image's OCI config
    log: Path

    def spec_of(self, deployment: Mapping[str, Any]) -> ContainerSpec:
        """What another version of the Deployment says of this container (its image's)."""
        return ContainerSpec.read(deployment, self.image)

    def call(self, port: int, path: str, body: Any = None) -> tuple[int | None, Any]:
        """GET (or POST `body` as JSON) `path` on `port`: (status or None if refused, body)."""
        payload = "" if body is None else json.dumps(body)
        done = subprocess.run(
            [
                "nsenter",
                f"--net=/proc/{self.process.pid}/ns/net",
                sys.executable,
                "-c",
                _CALL,
                f"http://127.0.0.1:{port}{path}",
                payload,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode:  # the namespace is gone (the container exited) or not there yet
            return None, done.stderr
        status, text = json.loads(done.stdout)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def post(self, path: str, body: Any) -> tuple[int | None, Any]:
        """POST JSON to the container's `http` port."""
        return self.call(self.spec.ports["http"], path, body)

    def probe_failures(self, spec: ContainerSpec) -> list[str]:
        """Which of `spec`'s HTTP probes this running container does not answer with a 200."""
        failures = []
        for kind, (path, port) in spec.probes.items():
            status, _ = self.call(port, path)
            if status != 200:
                failures.append(f"{kind} GET {path} on port {port}: {status or 'refused'}")
        return failures

    def service_uid(self) -> int:
        """The real user id of the service's main process (the pod's init, under setpriv)."""
        (init,) = psutil.Process(self.process.pid).children()
        return int(init.uids().real)


def image_config(name: str) -> dict[str, Any]:
    """The OCI config of a buildah working container (entrypoint, env, user, workdir)."""
    done = subprocess.run(["buildah", "inspect", name], check=True, capture_output=True)
    return dict(json.loads(done.stdout)["OCIv1"]["config"])


@contextmanager
def _container(workload: Mapping[str, Any], env: Mapping[str, str]) -> Iterator[_Mounted]:
    """Pull the image the workload's container names; yield its mounted root and spec."""
    ref = workload["spec"]["template"]["spec"]["containers"][0]["image"]
    name = f"paved-pod-{workload['metadata']['name']}-{ref.rsplit(':', 1)[-1][:12]}"
    subprocess.run(["buildah", "rm", name], capture_output=True)
    subprocess.run(
        ["buildah", "from", "--tls-verify=false", "--pull-always", "--name", name, ref],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        image = image_config(name)
        spec = ContainerSpec.read(workload, image)
        rootfs = subprocess.run(
            ["buildah", "mount", name], check=True, capture_output=True, text=True
        ).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="paved-pod-") as scratch:
            yield _Mounted(name, rootfs, spec, image, Path(scratch))
    finally:
        subprocess.run(["buildah", "umount", name], capture_output=True)
        subprocess.run(["buildah", "rm", name], capture_output=True)


@dataclass(frozen=True)
class _Mounted:
    name: str
    rootfs: str
    spec: ContainerSpec
    image: dict[str, Any]
    scratch: Path

    def launch(
        self, *, network: Pod | None = None, hosts: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """Start the container; its output goes to `scratch/pod.log`.

        With `network`, it joins that pod's network namespace (as a pod's containers share
        one), and each of `hosts` (a Service's name) is loopback in its hosts file.
        """
        root = self.scratch / "root"
        root.mkdir()
        names = "".join(f"127.0.0.1\t{host}\n" for host in hosts)
        etc = {
            "hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{names}",
            "hostname": self.name + "\n",
        }
        for file, text in etc.items():
            (self.scratch / file).write_text(text)
        runtime = {
            "rootfs": self.rootfs,
            "root": str(root),
            "etc": {file: str(self.scratch / file) for file in etc},
            "loopback": network is None,
            **self.spec.__dict__,
        }
        joined = ["nsenter", f"--net=/proc/{network.process.pid}/ns/net"] if network else []
        isolated = [] if network else ["--net"]
        with (self.scratch / "pod.log").open("wb") as out:
            return subprocess.Popen(
                [
                    *joined,
                    *("unshare", "--mount", *isolated, "--pid", "--fork", "--kill-child"),
                    *(sys.executable, "-c", _RUNTIME, json.dumps(runtime)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


@contextmanager
def run_pod(deployment: Mapping[str, Any], *, env: Mapping[str, str]) -> Iterator[Pod]:
    """Pull the image `deployment`'s container names and run it as the Deployment says.

    Yields once its startup (else readiness) probe answers 200 on the declared port. Raises
    PodRefused if the kubelet would not start it, RuntimeError if it exits or the probe's
    budget passes first. `env` is the pull's (a registry's credentials).
    """
    with _container(deployment, env) as mounted:
        spec, log = mounted.spec, mounted.scratch / "pod.log"
        process = mounted.launch()
        try:
            pod = Pod(process, spec, mounted.image, log)
            path, port = spec.probes.get("startupProbe") or spec.probes["readinessProbe"]
            deadline = time.monotonic() + spec.startup_seconds
            while pod.call(port, path)[0] != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the container never answered GET {path} on port {port}:\n"
                        + log.read_text(errors="replace")[-4000:]
                    )
                time.sleep(0.5)
            yield pod
        finally:
            stop(process)


def run_job(
    job: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    beside: Pod,
    services: Sequence[Mapping[str, Any]],
) -> tuple[int, str]:
    """Run a Job's container as the Job says, to its end; return its exit code and output.

    It joins `beside`'s network namespace, where each of `services` (rendered Services in
    front of that pod) is emulated: its name resolves to loopback, and each of its ports
    is forwarded to its targetPort (a port name is looked up in the pod's ports), as
    kube-proxy does. Stopped, and failed, after the Job's activeDeadlineSeconds.
    """
    forwards = [
        (int(port["port"]), _target(port.get("targetPort", port["port"]), beside.spec))
        for service in services
        for port in service["spec"]["ports"]
    ]
    names = [str(service["metadata"]["name"]) for service in services]
    proxies = [
        subprocess.Popen(
            [
                *("nsenter", f"--net=/proc/{beside.process.pid}/ns/net"),
                *(sys.executable, "-c", _FORWARD, str(listen), str(target)),
            ],
            start_new_session=True,
        )
        for listen, target in forwards
    ]
    try:
        with _container(job, env) as mounted:
            process = mounted.launch(network=beside, hosts=names)
            try:
                code = process.wait(timeout=job["spec"].get("activeDeadlineSeconds", 600))
            except subprocess.TimeoutExpired:
                stop(process)
                code = -1
            return code, (mounted.scratch / "pod.log").read_text(errors="replace")
    finally:
        for proxy in proxies:
            stop(proxy)


def _target(port: int | str, spec: ContainerSpec) -> int:
    """A Service's targetPort: a number, or the name of one of the container's ports."""
    return spec.ports[port] if isinstance(port, str) else int(port)
