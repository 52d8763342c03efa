"""Render tier: every answer set renders the exact file set, with no template left over."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from ci.golden_path import DEMO_ANSWERS
from ci.snapshot import PLATFORM_URL, ROOT
from tests.lib.helpers import MATRIX, RELEASE, Render, matrix_id

pytestmark = pytest.mark.render

PACKAGE = "iris_demo"
EXPECTED_FILES = {
    ".copier-answers.yml",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    ".github/dependabot.yml",
    ".github/workflows/ci.yml",
    ".github/workflows/deployed.yml",
    ".github/workflows/drift.yml",
    ".github/workflows/promote.yml",
    ".github/workflows/release.yml",
    ".github/workflows/retrain.yml",
    "README.md",
    "bentofile.yaml",
    "deploy/argocd/production.yaml",
    "deploy/argocd/staging.yaml",
    "deploy/base/deployment.yaml",
    "deploy/base/hpa.yaml",
    "deploy/base/kustomization.yaml",
    "deploy/base/networkpolicy.yaml",
    "deploy/base/pdb.yaml",
    "deploy/base/service.yaml",
    "deploy/base/smoke-job.yaml",
    "deploy/overlays/production/kustomization.yaml",
    "deploy/overlays/staging/kustomization.yaml",
    "docs/model-card.md",
    "docs/index.md",
    "catalog-info.yaml",
    "mkdocs.yml",
    "downstream/dvc.yaml",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    f"src/{PACKAGE}/__init__.py",
    f"src/{PACKAGE}/contract.py",
    f"src/{PACKAGE}/pipeline/__init__.py",
    f"src/{PACKAGE}/pipeline/_common.py",
    f"src/{PACKAGE}/pipeline/evaluate.py",
    f"src/{PACKAGE}/pipeline/ingest.py",
    f"src/{PACKAGE}/pipeline/prepare.py",
    f"src/{PACKAGE}/pipeline/train.py",
    f"src/{PACKAGE}/service.py",
    "tests/test_pipeline.py",
}


def files_of(repo: Path) -> set[str]:
    return {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()}


@pytest.mark.parametrize("answers", MATRIX, ids=matrix_id)
def test_render_matrix(render: Render, platform: tuple[Path, str], answers: dict[str, str]) -> None:
    repo = render(**answers)
    package = answers.get("package_name", PACKAGE)
    expected = {f.replace(PACKAGE, package) for f in EXPECTED_FILES}
    if answers.get("deploy_target") == "none":
        workflows = {".github/workflows/promote.yml", ".github/workflows/deployed.yml"}
        expected = {f for f in expected if not f.startswith("deploy/") and f not in workflows}
    assert files_of(repo) == expected

    for path in repo.rglob("*"):
        if path.is_file():
            # GitHub Actions expressions (${{ ... }}) belong in workflows; Jinja does not.
            text = re.sub(r"\$\{\{.*?\}\}", "", path.read_text(encoding="utf-8"))
            assert not re.search(r"\{\{|\{%|\{#", text), f"template syntax left in {path}"

    # Whatever the answers, every generated Python, TOML and YAML file parses, and the
    # human text in the package's docstring reads back exactly as given.
    for path in repo.rglob("*"):
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if path.suffix == ".py":
            ast.parse(text, filename=str(path))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix in {".yml", ".yaml"}:
            yaml.safe_load(text)
    module = ast.parse((repo / "src" / package / "__init__.py").read_text())
    name = {**DEMO_ANSWERS, **answers}["project_name"]
    assert ast.get_docstring(module, clean=False).startswith(f"{name}: ")
    assert len(module.body) == 1, "the package's __init__ holds only its docstring"

    recorded = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert recorded["_src_path"] == PLATFORM_URL
    assert recorded["_commit"] == RELEASE
    for key, value in {**DEMO_ANSWERS, **answers}.items():
        assert recorded[key] == value
    assert not {"platform_git_url", "model_name", "service_class", "image_name"} & recorded.keys()

    project = tomllib.loads((repo / "pyproject.toml").read_text())
    _, sha = platform
    pins = [*project["project"]["dependencies"], *project["dependency-groups"]["dev"]]
    assert f"paved-ml @ git+{PLATFORM_URL}@{sha}#subdirectory=libs/paved-ml" in pins
    assert f"paved @ git+{PLATFORM_URL}@{sha}#subdirectory=libs/paved" in pins
    tracking = f"paved-ml[tracking] @ git+{PLATFORM_URL}@{sha}#subdirectory=libs/paved-ml"
    assert tracking in project["dependency-groups"]["dev"]
    assert project["project"]["requires-python"] == f"=={answers.get('python_version', '3.11')}.*"
    assert (repo / ".python-version").read_text().strip() == answers.get("python_version", "3.11")
    pin_line = f'@{sha}#subdirectory=libs/paved-ml",  # {RELEASE}'
    assert pin_line in (repo / "pyproject.toml").read_text()
    tracking = answers.get("mlflow_tracking_uri", "sqlite:///mlflow.db")
    assert project["tool"]["paved"]["tracking-uri"] == tracking
    registry = answers.get("container_registry", f"ghcr.io/{answers.get('org', 'acme').lower()}")
    assert project["tool"]["paved"]["image"] == f"{registry}/iris-demo"
    # pyproject is the registry's one home: the release workflow passes only the override;
    # the overlays, which must name where a cluster pulls from, are held to it by PV012.
    release = yaml.safe_load((repo / ".github/workflows/release.yml").read_text())
    called = release["jobs"]["release"]["with"]
    assert called["registry"] == "${{ vars.PAVED_REGISTRY }}"
    stored = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()}
    stored = {f for f in stored if registry in (repo / f).read_text(encoding="utf-8")}
    overlays = {f"deploy/overlays/{env}/kustomization.yaml" for env in ("staging", "production")}
    assert stored <= {"pyproject.toml", "README.md", ".copier-answers.yml", *overlays}, stored

    remote_kind = answers.get("dvc_remote", "local")
    dvc_config = (repo / ".dvc/config").read_text()
    url = re.search(r"url = (.+)", dvc_config).group(1)
    if remote_kind == "local":
        assert url == "~/.local/share/paved/dvc-storage/data-science/iris-demo"
        assert any(dep.startswith("dvc>=") for dep in project["dependency-groups"]["dev"])
    else:
        assert url.startswith(f"{remote_kind}://")
        extra = f"dvc[{remote_kind}]"
        assert any(dep.startswith(extra) for dep in project["dependency-groups"]["dev"])

    if answers.get("deploy_target", "kubernetes") == "kubernetes":
        deployment = yaml.safe_load((repo / "deploy/base/deployment.yaml").read_text())
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        size = {
            "cpu": answers.get("service_cpu", "500m"),
            "memory": answers.get("service_memory", "1Gi"),
        }
        assert container["resources"] == {"requests": size, "limits": size}

    bentofile = yaml.safe_load((repo / "bentofile.yaml").read_text())
    service_class = "".join(part.capitalize() for part in package.split("_")) + "Service"
    assert bentofile["service"] == f"{package}.service:{service_class}"


def ruff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "."],
        cwd=repo,
        capture_output=True,
        text=True,
    )


def test_generated_lint_rules_fire(render: Render) -> None:
    """The generated ruff config is live: a planted unused import is reported."""
    repo = render()
    (repo / "src" / PACKAGE / "bad.py").write_text("import os\n")
    result = ruff(repo, "check")
    assert result.returncode == 1
    assert "F401" in result.stdout and "bad.py" in result.stdout


def test_rendered_python_is_clean(render: Render) -> None:
    repo = render(package_name="iris_model", python_version="3.12")
    for args in (["check"], ["format", "--check"]):
        result = ruff(repo, *args)
        assert result.returncode == 0, result.stdout + result.stderr


BAD_ANSWERS = [
    ("project_name", "", "must not be empty"),
    ("project_name", "..", "is not a name"),
    ("project_name", "team/iris", "path separator"),
    ("project_name", "Iris\nDemo", "single line"),
    ("project_name", "x" * 65, "at most 64"),
    ("distribution_name", "", "must not be empty"),
    ("distribution_name", ".", "is not a name"),
    ("distribution_name", "../iris", "path separator"),
    ("distribution_name", "1iris", "must not start with a digit"),
    ("distribution_name", "iris demo", "is not valid"),
    ("distribution_name", "Iris_Demo", "is not valid"),
    ("distribution_name", "iris\ndemo", "single line"),
    ("distribution_name", "i" * 65, "at most 64"),
    ("package_name", "class", "Python keyword"),
    ("package_name", "json", "standard-library module"),
    ("package_name", "logging", "standard-library module"),
    ("package_name", "mlflow", "would shadow"),
    ("package_name", "2fast", "must not start with a digit"),
    ("package_name", "iris demo", "is not valid"),
    ("package_name", "iris-demo", "is not valid"),
    ("package_name", "iris\nx", "single line"),
    ("package_name", "p" * 65, "at most 64"),
    ("team", "", "must not be empty"),
    ("team", "Data Science", "is not valid"),
    ("description", "two\nlines", "single line"),
    ("python_version", "3.10", "Invalid choice"),
    ("python_version", "3.13", "Invalid choice"),
    ("dvc_remote", "ftp", "Invalid choice"),
    ("dvc_remote_url", "s3://bucket/x", "is a path"),
    ("mlflow_tracking_uri", "ftp://mlflow", "is not valid"),
    ("mlflow_tracking_uri", 'http://mlflow.internal"', "must not contain quotes"),
    ("mlflow_tracking_uri", "postgresql://ml:s3cret@db.internal/mlflow", "MLFLOW_TRACKING_URI"),
    ("mlflow_tracking_uri", "https://token@mlflow.internal", "must not carry credentials"),
    ("platform_repo_url", "https://ghp_token@github.com/acme/paved.git", "credential helper"),
    ("platform_repo_url", 'https://github.com/acme/paved"', "must not contain quotes"),
    ("dvc_remote_url", "/srv/dvc#store", "must not contain quotes, backslashes, #"),
    ("project_name", "Iris\x1bDemo", "control characters"),
    ("container_registry", "https://ghcr.io/acme", "without a scheme"),
    ("platform_repo_url", "file:///srv/paved", "git+file"),
    ("org", "-acme", "GitHub organisation"),
    ("service_cpu", "500 m", "must not contain spaces"),
    ("service_cpu", "half", "a CPU quantity"),
    ("service_memory", "1G", "in Mi or Gi"),
    ("deploy_target", "nomad", "deploy_target"),
    ("retrain_schedule", "weekly", "five cron fields"),
    ("retrain_schedule", "0 5 * * 1; rm -rf /", "five cron fields"),
]


@pytest.mark.parametrize(("question", "value", "message"), BAD_ANSWERS, ids=lambda v: repr(v)[:30])
def test_bad_answer_is_refused_and_writes_nothing(
    platform: tuple[Path, str], tmp_path: Path, question: str, value: str, message: str
) -> None:
    dest = tmp_path / "repo"
    data = {**DEMO_ANSWERS, question: value}
    args = [arg for key, val in data.items() for arg in ("--data", f"{key}={val}")]
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", *args, PLATFORM_URL, str(dest)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert question in result.stderr
    assert message in result.stderr
    assert not dest.exists()


def test_remote_url_must_match_remote_kind(platform: tuple[Path, str], tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "copy",
            "--defaults",
            "--data",
            "project_name=Iris",
            "--data",
            "team=ds",
            "--data",
            "dvc_remote=s3",
            "--data",
            "dvc_remote_url=gs://b/x",
            PLATFORM_URL,
            str(dest),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "dvc_remote_url" in result.stderr and "s3://bucket/path" in result.stderr
    assert not dest.exists()


def test_subfolder_copy_is_not_offered() -> None:
    """No doc or script tells anyone to copy templates/<kind> directly: it loses updates."""
    pattern = re.compile(r"copier copy \S*templates/")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("README.md", "docs", "ci", "copier.yml", "templates", "libs")
        for path in ([ROOT / folder] if (ROOT / folder).is_file() else (ROOT / folder).rglob("*"))
        if path.is_file()
        and path.suffix in {".md", ".py", ".yml", ".yaml", ".jinja", ""}
        and pattern.search(path.read_text(encoding="utf-8", errors="ignore"))
    ]
    assert offenders == []


def test_platform_and_team_repos_share_their_lint_hooks() -> None:
    """The platform uses its own output: the ruff hooks are the same in both configs."""

    def hooks(path: Path) -> dict[str, dict[str, object]]:
        config = yaml.safe_load(path.read_text())
        return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}

    platform = hooks(ROOT / ".pre-commit-config.yaml")
    team = hooks(ROOT / "templates/ml-project/.pre-commit-config.yaml")
    for hook_id in ("ruff", "ruff-format"):
        assert platform[hook_id] == team[hook_id]


def test_plain_copier_copy_prints_the_next_steps(
    platform: tuple[Path, str], tmp_path: Path
) -> None:
    dest = tmp_path / "repo"
    args = [a for k, v in DEMO_ANSWERS.items() for a in ("--data", f"{k}={v}")]
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", *args, PLATFORM_URL, str(dest)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    steps = ("uv lock", "git init --initial-branch=main", "uv sync", "uv run dvc repro")
    positions = [output.find(step) for step in (*steps, "uv run bentoml serve")]
    assert -1 not in positions, output
    assert positions == sorted(positions), "the lock must exist before the first commit"
