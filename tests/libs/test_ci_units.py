"""Pure logic of `paved ci`: image tags, builder choice, the Containerfile."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from paved._errors import PavedError
from paved.ci.image import (
    APP_UID,
    ImageBuild,
    choose_builder,
    containerfile,
    image_tags,
    login,
    push_image,
)

pytestmark = pytest.mark.libs

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("refs/heads/main", (SHA, "latest")),
        ("refs/heads/feature", (SHA,)),
        ("refs/tags/v1.2.0", (SHA, "v1.2.0")),
        ("refs/pull/7/merge", (SHA,)),
        ("", (SHA,)),
    ],
)
def test_tags(ref: str, expected: tuple[str, ...]) -> None:
    assert image_tags(sha=SHA, ref=ref, default_branch="main") == expected


def test_latest_follows_the_default_branch() -> None:
    assert image_tags(sha=SHA, ref="refs/heads/trunk", default_branch="trunk") == (SHA, "latest")
    assert image_tags(sha=SHA, ref="refs/heads/main", default_branch="trunk") == (SHA,)


def fake_tool(folder: Path, name: str, code: int) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ({"docker": 0, "buildah": 0}, "buildx"),  # a daemon answers: buildx
        ({"docker": 1, "buildah": 0}, "buildah"),  # docker CLI without a daemon
        ({"buildah": 0}, "buildah"),
    ],
)
def test_builder_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools: dict[str, int], expected: str
) -> None:
    for name, code in tools.items():
        fake_tool(tmp_path, name, code)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert choose_builder() == expected


def test_a_registry_without_tls_verification_takes_buildah(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(tmp_path, "docker", 0)
    fake_tool(tmp_path, "buildah", 0)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert choose_builder(tls_verify=False) == "buildah"
    build = ImageBuild(
        project=tmp_path,
        image="127.0.0.1:5000/acme/iris",
        tags=(SHA,),
        base_image="b",
        python_version="3.11",
    )
    with pytest.raises(PavedError, match="insecure-registries, or use --builder buildah"):
        push_image(build, builder="buildx", tls_verify=False)
    with pytest.raises(PavedError, match="unknown builder 'kaniko'"):
        push_image(build, builder="kaniko")


def test_no_builder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PavedError, match="install docker with buildx, or buildah"):
        choose_builder()


def test_containerfile_is_lean_non_root_exec_form() -> None:
    build = ImageBuild(
        project=Path(os.devnull),
        image="ghcr.io/acme/iris",
        tags=(SHA,),
        base_image="python:3.11-slim",
        python_version="3.11",
        labels={"org.opencontainers.image.revision": SHA, "dev.paved.platform.version": "v1.0.0"},
    )
    text = containerfile(build)
    instructions = [line.split()[0] for line in text.splitlines() if line and line[0].isupper()]
    assert "RUN" not in instructions  # no package-manager or shell layer
    assert instructions.count("COPY") == 2
    assert f"USER {APP_UID}:{APP_UID}" in text
    assert 'ENTRYPOINT ["python3", "-m", "bentoml", "serve"' in text
    assert f'LABEL org.opencontainers.image.revision="{SHA}"' in text
    assert text.splitlines()[1] == "FROM python:3.11-slim"


def test_registry_without_credentials_is_left_alone() -> None:
    assert (
        login("127.0.0.1:5000/acme", env={"GITHUB_TOKEN": "ghs_job"})
        == "no credentials for 127.0.0.1:5000: pushing without logging in"
    )


def test_a_password_without_a_user_is_refused() -> None:
    with pytest.raises(PavedError, match="set REGISTRY_USERNAME"):
        login("registry.acme.example/ml", env={"REGISTRY_PASSWORD": "token"})


def test_image_build_from_a_repo_and_its_ci_context(tmp_path: Path) -> None:
    from paved.ci.jobs import image_build_from_repo

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "churn"\nversion = "1.4.0"\n\n'
        '[tool.paved]\nimage = "ghcr.io/acme/churn"\n'
    )
    (tmp_path / ".python-version").write_text("3.12\n")
    (tmp_path / ".copier-answers.yml").write_text("_commit: v2.0.0\n")
    env = {
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/tags/v1.4.0",
        "GITHUB_REPOSITORY": "acme/churn",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    build = image_build_from_repo(tmp_path, env=env)
    assert build.refs == [f"ghcr.io/acme/churn:{SHA}", "ghcr.io/acme/churn:v1.4.0"]
    assert build.base_image == "python:3.12-slim"
    assert build.python_version == "3.12"
    assert build.labels["org.opencontainers.image.source"] == "https://github.com/acme/churn"
    assert build.labels["org.opencontainers.image.version"] == "v1.4.0"
    assert build.labels["dev.paved.platform.version"] == "v2.0.0"
    assert "dev.paved.model.version" not in build.labels  # no champion yet
    (tmp_path / "models" / "champion").mkdir(parents=True)
    record = tmp_path / "models" / "champion" / "champion.json"
    record.write_text('{"model_name": "churn", "version": "12", "metrics": {}}')
    labelled = image_build_from_repo(tmp_path, env=env).labels
    model = (labelled["dev.paved.model.name"], labelled["dev.paved.model.version"])
    assert model == ("churn", "12")
    record.write_text("[1, 2]")
    with pytest.raises(PavedError, match=r"champion\.json is not a JSON object"):
        image_build_from_repo(tmp_path, env=env)
    record.unlink()
    other = image_build_from_repo(
        tmp_path, registry="127.0.0.1:5000/ml", image_name="svc", base_image="local/base:1", env=env
    )
    assert other.image == "127.0.0.1:5000/ml/svc" and other.base_image == "local/base:1"


@pytest.mark.parametrize(
    ("python", "base"),
    [
        ("3.11", "gcr.io/distroless/python3-debian12"),  # Debian 12's Python
        ("3.11.9", "python:3.11.9-slim"),  # a patch pin distroless cannot honour
        ("3.12", "python:3.12-slim"),  # no distroless image has 3.12
    ],
)
def test_the_default_base_is_distroless_where_one_has_the_repos_python(
    tmp_path: Path, python: str, base: str
) -> None:
    from paved.ci.jobs import image_build_from_repo

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "churn"\n\n[tool.paved]\nimage = "ghcr.io/acme/churn"\n'
    )
    (tmp_path / ".python-version").write_text(f"{python}\n")
    build = image_build_from_repo(tmp_path, env={"GITHUB_SHA": SHA, "GITHUB_REF": "refs/heads/x"})
    assert build.base_image == base
    assert build.labels["org.opencontainers.image.base.name"] == base


def test_a_repo_without_tool_paved_is_refused(tmp_path: Path) -> None:
    from paved.ci.jobs import image_build_from_repo

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(PavedError, match=r"has no \[tool.paved\] table"):
        image_build_from_repo(tmp_path, env={"GITHUB_SHA": SHA})


def _stamped(name: str, seconds: float, code: int = 0) -> tuple[str, tuple[str, ...]]:
    """A step that records when it started and ended, sleeps, and exits with `code`."""
    script = (
        "import sys, time; started = time.time(); "
        f"time.sleep({seconds}); "
        f"open({name!r} + '.times', 'w').write(f'{{started}} {{time.time()}}'); "
        f"sys.exit({code})"
    )
    return name, ("-c", script)


@pytest.mark.parametrize("types_fails", [False, True])
def test_the_type_check_runs_beside_the_others_and_is_reported_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, types_fails: bool
) -> None:
    from paved.ci import jobs as _ci

    steps = (_stamped("lint", 0.5), _stamped("tests", 0.5), _stamped("types", 0.8, types_fails))
    monkeypatch.setattr(_ci, "VERIFY_STEPS", steps)
    reported: list[str] = []
    results = _ci.verify(tmp_path, report=lambda result: reported.append(result.name))
    assert reported == ["lint", "tests", "types"]
    assert [result.ok for result in results] == [True, True, not types_fails]
    times = {
        name: tuple(map(float, (tmp_path / f"{name}.times").read_text().split()))
        for name in reported
    }
    assert times["types"][0] < times["lint"][1]  # started before the first step ended


def test_a_failed_step_stops_the_rest_and_the_type_check_is_still_reported_only_if_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paved.ci import jobs as _ci

    steps = (_stamped("lint", 0.1, 1), _stamped("tests", 0.1), _stamped("types", 0.3))
    monkeypatch.setattr(_ci, "VERIFY_STEPS", steps)
    results = _ci.verify(tmp_path)
    assert [(result.name, result.ok) for result in results] == [("lint", False)]
    assert not (tmp_path / "tests.times").exists()


def test_a_service_that_says_no_is_a_service_refusal_naming_it_and_its_status() -> None:
    """A token service's HTTP refusal is a ServiceRefusal (a PavedError): service, status, why."""
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from paved._errors import ServiceRefusal
    from paved.ci.tokens import call

    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"this identity may not push"
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/token"
        with pytest.raises(ServiceRefusal) as refused:
            call("the registry's token service", urllib.request.Request(url))
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(refused.value, PavedError)
    assert (refused.value.service, refused.value.status) == ("the registry's token service", 403)
    assert refused.value.reason == "this identity may not push"
    assert str(refused.value) == (
        "the registry's token service refused (403): this identity may not push"
    )
