"""The golden path of a team repo as code: generate, install, run the pipeline, serve.

Shared by the demo (ci/demo.py), the project-tier tests and the benchmarks, so all three
exercise exactly the same steps with the real tools (copier, uv, DVC, MLflow, BentoML).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml
from paved.constants import TELEMETRY_OFF
from paved.template import PLATFORM_URL

from ci.snapshot import LOCK_ENV, canonical_env

#: Variables of a CI run (GitHub Actions, act) that describe that run, not a team repo.
CI_CONTEXT = ("GITHUB_", "RUNNER_", "ACTIONS_", "INPUT_")
#: A store named in this process's environment (a developer's own, say): passed on, it
#: would make every generated repo register into that one store. A team repo's store is
#: its own ([tool.paved]).
OTHER_STORE = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
#: The demo's answers: those of the committed example, so the demo, the tests and the
#: benchmarks generate the repo examples/iris-demo shows.
DEMO_ANSWERS: dict[str, str] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "examples" / "iris-demo.answers.yml").read_text(
        encoding="utf-8"
    )
)
IRIS_ROW = {
    "sepal_length_cm": 5.9,
    "sepal_width_cm": 3.0,
    "petal_length_cm": 5.1,
    "petal_width_cm": 1.8,
}


def tool_env(platform_clone: Path, **extra: str) -> dict[str, str]:
    """The environment for every step: canonical platform URL mapped to the clone, quiet tools.

    Built from this process's environment less what names another context: our virtualenv
    (the team repo has its own), an MLflow store (OTHER_STORE), and a CI run's variables
    (GITHUB_*, RUNNER_*, ACTIONS_*), which would make `paved ci` tag and label the team's
    image with this repo's commit when the tests themselves run in GitHub Actions.
    Team-repo locks resolve as of the platform's own lock (UV_EXCLUDE_NEWER), so a new
    upstream release changes no test.
    """
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(CI_CONTEXT) and key != "VIRTUAL_ENV" and key not in OTHER_STORE
    }
    return {**inherited, **canonical_env(platform_clone), **TELEMETRY_OFF, **LOCK_ENV, **extra}


def run(cmd: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a step; on failure raise with its output, so a broken step says why."""
    result = subprocess.run(cmd, cwd=cwd, env=dict(env), capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(
            f"`{' '.join(cmd)}` exited {result.returncode} in {cwd}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def generate(
    dest: Path,
    env: Mapping[str, str],
    answers: Mapping[str, str],
    *,
    vcs_ref: str | None = None,
    src: str = PLATFORM_URL,
    lock: bool = True,
) -> Path:
    """`paved new` from the canonical URL (served from the clone by git's insteadOf)."""
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    command = [sys.executable, "-m", "paved", "new", str(dest), "--src", src, "--defaults"]
    ref = ["--vcs-ref", vcs_ref] if vcs_ref else []
    run([*command, *ref, *data, *([] if lock else ["--no-lock"])], dest.parent, env)
    return dest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Service:
    """A running model service."""

    url: str
    pid: int

    def post(self, path: str, body: bytes | dict[str, Any]) -> tuple[int, Any]:
        """POST JSON (or raw bytes); return (status, decoded body)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def post_oversized(self, path: str, body: bytes) -> int | None:
        """POST a body the service should refuse, as a real client does; return the status.

        A server that refuses a body unread closes the connection while the client may still
        be sending it: depending on timing the client reads the 413 back, or its write (or
        read) meets a reset. None stands for the reset. Which of the two happened proves
        nothing about reading: `post_headers_only` does.
        """
        request = urllib.request.Request(
            self.url + path, data=body, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionError):
                return None
            raise
        except ConnectionError:  # raised while reading the answer, unwrapped by urllib
            return None

    def post_headers_only(
        self, path: str, *, declared: int | None = None, chunk: bytes | None = None
    ) -> tuple[int, bytes]:
        """Send a POST's headers (and at most one chunk of its body), then wait for the answer.

        With `declared`, the headers announce a body of that many bytes and none of it is
        sent: a service that answers has decided without reading the body. With `chunk`, the
        body is chunked and only that chunk is sent: an answer means the service decided on
        what it had read so far. Returns (status, answer body).
        """
        host, port = self.url.removeprefix("http://").split(":")
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        if chunk is None:
            head += f"Content-Length: {declared}\r\n\r\n"
            data = head.encode()
        else:
            head += "Transfer-Encoding: chunked\r\n\r\n"
            data = head.encode() + b"%x\r\n%s\r\n" % (len(chunk), chunk)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(data)
            response = http.client.HTTPResponse(sock)
            response.begin()
            return response.status, response.read()

    def get(self, path: str) -> int:
        """GET a path; return the status."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code


def launch(
    project: Path, env: Mapping[str, str], *, command: tuple[str, ...], port: int | None = None
) -> tuple[subprocess.Popen[bytes], Service, Path]:
    """Start a server (`command --host 127.0.0.1 --port N`) in `project`; do not wait for it.

    It runs in a process group of its own, so that its workers stop with it; its output
    goes to `.serve.log` in `project`, whose path is returned with the process.
    """
    port = port or free_port()
    log = project / ".serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=project,
            env={**env, "BENTOML_HOME": str(project / ".bentoml")},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, Service(f"http://127.0.0.1:{port}", process.pid), log


@contextmanager
def serve(
    project: Path,
    env: Mapping[str, str],
    *,
    command: tuple[str, ...] = ("uv", "run", "--frozen", "bentoml", "serve"),
    port: int | None = None,
    timeout: float = 90,
    ready_path: str = "/readyz",
) -> Iterator[Service]:
    """`bentoml serve` (in the repo's environment) on 127.0.0.1; yield once /readyz answers.

    The service runs in a process group of its own and is stopped by PID on the way out,
    workers included.
    """
    process, service, log = launch(project, env, command=command, port=port)
    with running(
        process,
        lambda: _ready(service, ready_path),
        timeout=timeout,
        failure=lambda: f"service did not become ready:\n{log.read_text()[-4000:]}",
    ):
        yield service


@contextmanager
def running(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    failure: Callable[[], str],
) -> Iterator[None]:
    """Wait until the server `process` is `ready()`, then yield; stop it by PID on the way out.

    Raises RuntimeError with `failure()` if it exits or the timeout passes first.
    """
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(failure())
            time.sleep(0.1)
        yield
    finally:
        stop(process)


def _ready(service: Service, path: str) -> bool:
    try:
        return service.get(path) == 200
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children may leave its process group, as BentoML's do)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop(process: subprocess.Popen[bytes]) -> bool:
    """Stop a server by PID: its process group, then any descendant that left the group.

    SIGTERM to the group; SIGKILL to the group if its leader has not exited 20 s later, and
    to any descendant still running once it has. Returns whether it had to escalate to
    SIGKILL, so that a test can assert a graceful shutdown (other callers may ignore it).
    """
    tree = _descendants(process.pid)
    escalated = False
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        escalated = True
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    for pid in tree:
        with suppress(psutil.NoSuchProcess):
            leftover = psutil.Process(pid)
            if leftover.status() != psutil.STATUS_ZOMBIE:  # a zombie has exited already
                leftover.kill()
                escalated = True
    return escalated


@contextmanager
def serve_image(ref: str, cwd: Path, env: Mapping[str, str]) -> Iterator[Service]:
    """Pull `ref` (image@digest) with buildah and serve its own entrypoint on a loopback port.

    `buildah run --isolation chroot` runs the image's process with the host network; the
    port option appended to the entrypoint wins over the image's default.
    """
    name = "paved-serve-" + ref.rsplit(":", 1)[-1][:12]
    subprocess.run(["buildah", "rm", name], capture_output=True)
    subprocess.run(
        ["buildah", "from", "--tls-verify=false", "--pull-always", "--name", name, ref],
        check=True,
        capture_output=True,
        env=env,  # with the registry's credentials, if it asks for them
    )
    try:
        inspect = subprocess.run(["buildah", "inspect", name], check=True, capture_output=True)
        entrypoint = json.loads(inspect.stdout)["OCIv1"]["config"]["Entrypoint"]
        command = ("buildah", "run", "--isolation", "chroot", name, "--", *entrypoint)
        with serve(cwd, env, command=command) as service:
            yield service
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


def trained_repo(scratch: Path) -> tuple[Path, dict[str, str]]:
    """A team repo generated from a snapshot of this checkout, synced, its pipeline run."""
    from ci.snapshot import snapshot

    snapshot(scratch / "platform")
    env = tool_env(scratch / "platform")
    answers = {**DEMO_ANSWERS, "dvc_remote_url": str(scratch / "remote")}
    project = generate(scratch / "iris-demo", env, answers)
    run(["uv", "sync", "--frozen"], project, env)
    run(["uv", "run", "--frozen", "dvc", "repro"], project, env)
    return project, env
