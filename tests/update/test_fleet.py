"""`paved fleet update`: a release rolled out to 20 team repos with faults, then to a GitHub
organisation with pull requests.

Local bare repos stand in for the remotes; each refuses a push to its default branch in a
pre-receive hook, so anything that reached one would fail the run. The platform has three
throwaway releases: v0.1.0, v0.2.0 (ci/throwaway.py) and v0.3.0, whose migration fails in
a repo that holds `.no-migrate`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from paved.template import PLATFORM_URL

from ci.golden_path import generate, run, tool_env
from ci.release import release
from ci.snapshot import GIT_IDENTITY
from ci.throwaway import TEMPLATE, two_releases
from tests.lib.fake_github import serving
from tests.lib.helpers import ALIAS_BOMB, PROTECT_MAIN, commit_all, paved, protected_origin, refs

pytestmark = pytest.mark.update

FORK = "https://github.com/acme-fork/paved.git"
ELSEWHERE = "https://github.com/elsewhere/paved.git"


def platform_with_three_releases(repo: Path) -> dict[str, str]:
    two_releases(repo)
    env = {**tool_env(repo), **GIT_IDENTITY}
    copier_yml = repo / "copier.yml"
    copier_yml.write_text(
        copier_yml.read_text()
        + """
_migrations:
  - version: v0.3.0
    when: "{{ _stage == 'before' }}"
    command: "test ! -e .no-migrate"
"""
    )
    readme = repo / TEMPLATE / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n## Added in the third release\n")
    changelog = repo / "docs" / "changelog.md"
    changelog.write_text(
        changelog.read_text().replace(
            "## [Unreleased]\n", "## [Unreleased]\n\n### Added\n- A third README section.\n", 1
        )
    )
    run(["git", "add", "--all"], repo, env)
    run(["git", "commit", "--quiet", "-m", "Template: a third section"], repo, env)
    release(repo, "0.3.0")
    # A fork's URL, served from the same clone: a source paved update does not trust.
    count = int(env["GIT_CONFIG_COUNT"])
    env.update(
        {
            "GIT_CONFIG_COUNT": str(count + 1),
            f"GIT_CONFIG_KEY_{count}": f"url.{repo.resolve().as_uri()}.insteadOf",
            f"GIT_CONFIG_VALUE_{count}": FORK,
        }
    )
    return env


def team(env: dict[str, str], root: Path, name: str, release_tag: str = "v0.1.0") -> Path:
    """A team repo generated at `release_tag`, with a bare origin that protects main."""
    dest = root / name
    answers = {"project_name": name.title(), "team": "fleet"}
    generate(dest, env, answers, vcs_ref=release_tag, lock=False)
    (root / "remotes").mkdir(exist_ok=True)
    protected_origin(dest, root / "remotes" / f"{name}.git", env)
    return dest


FAULTS = {
    "dirty": "uncommitted changes",
    "edited": "",  # a conflicting team edit: pushed, with the conflict listed
    "no-answers": "no .copier-answers.yml",
    "fork": "trusts no other source",
    "no-migrate": "copier update failed",
    "gone": "cannot clone",
    "current": "",
    "newer": "newer than v0.3.0",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    root = tmp_path_factory.mktemp("fleet")
    env = platform_with_three_releases(root / "paved")
    healthy = [
        team(env, root, f"healthy-{n:02d}", "v0.1.0" if n % 2 else "v0.2.0") for n in range(12)
    ]
    dirty = team(env, root, "dirty")
    (dirty / "scratch.txt").write_text("work in progress\n")
    edited = team(env, root, "edited")
    params = edited / "params.yaml"
    params.write_text(params.read_text().replace("  max_iter: 500", "  max_iter: 650"))
    commit_all(edited, env, "Train a little longer")
    fork = team(env, root, "fork")
    answers = fork / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("https://github.com/acme/paved.git", FORK))
    commit_all(fork, env, "Take the template from our fork")
    no_migrate = team(env, root, "no-migrate")
    (no_migrate / ".no-migrate").write_text("\n")
    commit_all(no_migrate, env, "Opt out of migrations")
    team(env, root, "current", "v0.3.0")
    newer = team(env, root, "newer", "v0.2.0")
    answers = newer / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace("_commit: v0.2.0", "_commit: v0.4.0"))
    commit_all(newer, env, "A canary on a later release")
    bare = root / "remotes" / "no-answers.git"
    plain = team(env, root, "no-answers-src")
    run(["git", "rm", "--quiet", ".copier-answers.yml"], plain, env)
    commit_all(plain, env, "No answers")
    run(["git", "clone", "--quiet", "--bare", str(plain), str(bare)], root, env)
    manifest = [{"path": str(repo)} for repo in healthy] + [
        {"path": str(root / name)}
        for name in ("dirty", "edited", "fork", "no-migrate", "current", "newer")
    ]
    manifest += [
        {"url": bare.as_uri(), "name": "no-answers"},
        {"url": (root / "remotes" / "gone.git").as_uri(), "name": "gone"},
    ]
    (root / "fleet.yml").write_text(yaml.safe_dump(manifest))
    return env, root


def test_a_release_reaches_the_healthy_repos_and_each_fault_is_reported(
    fleet: tuple[dict[str, str], Path],
) -> None:
    env, root = fleet
    remotes = root / "remotes"
    before = {path.name: refs(path) for path in remotes.glob("*.git")}
    local_before = {name: refs(root / name) for name in ("dirty", "fork", "no-migrate")}

    dry = paved(env, "fleet", "update", "fleet.yml", "--dry-run", "--no-lock", "--json", cwd=root)
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["counts"]["updated"] == 12, dry.stdout
    assert {path.name: refs(path) for path in remotes.glob("*.git")} == before
    assert not (root / ".paved-fleet").exists()  # a dry run keeps no record

    done = paved(
        env, "fleet", "update", "fleet.yml", "--jobs", "2", "--no-lock", "--json", cwd=root
    )
    assert done.returncode == 1, done.stderr  # some repos failed; the others went on
    report = json.loads(done.stdout)
    outcomes = {repo["name"]: repo for repo in report["repos"]}
    assert len(outcomes) == 20 and report["release"] == "v0.3.0"
    for n in range(12):
        repo = outcomes[f"healthy-{n:02d}"]
        assert repo["outcome"] == "updated", repo
        assert repo["branch"] == "paved/update-v0.3.0" and repo["score"] is not None
        origin = remotes / f"healthy-{n:02d}.git"
        pushed = run(["git", "log", "-1", "--format=%B", "paved/update-v0.3.0"], origin, env)
        assert "Update to the Paved platform v0.3.0" in pushed.stdout
        assert "A third README section." in pushed.stdout  # the changelog travels along
    assert outcomes["edited"]["outcome"] == "conflicts"
    assert any("params.yaml" in c for c in outcomes["edited"]["conflicts"])
    message = run(
        ["git", "log", "-1", "--format=%B", "paved/update-v0.3.0"], remotes / "edited.git", env
    ).stdout
    assert "Conflicts to resolve" in message and "params.yaml" in message
    assert outcomes["current"]["outcome"] == "current"
    assert outcomes["newer"]["outcome"] == "skipped"
    for name, reason in FAULTS.items():
        if reason:
            assert reason in outcomes[name]["reason"], (name, outcomes[name])
            assert outcomes[name]["outcome"] in {"failed", "skipped"}, name

    # Nothing reached a default branch; the failed repos and their remotes are as they were.
    def mains(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("refs/heads/main ")]

    for path in remotes.glob("*.git"):
        assert mains(refs(path)) == mains(before[path.name]), path.name
    for name in ("dirty", "fork", "no-migrate"):
        assert refs(root / name) == local_before[name], name
        assert refs(remotes / f"{name}.git") == before[f"{name}.git"], name
    assert (root / "dirty" / "scratch.txt").is_file()

    after_first = {path.name: refs(path) for path in remotes.glob("*.git")}
    again = paved(env, "fleet", "update", "fleet.yml", "--no-lock", "--json", cwd=root)
    second = {repo["name"]: repo["outcome"] for repo in json.loads(again.stdout)["repos"]}
    assert {second[f"healthy-{n:02d}"] for n in range(12)} == {"pending"}
    assert second["edited"] == "pending"
    assert {path.name: refs(path) for path in remotes.glob("*.git")} == after_first

    # Only the failed ones, from the record of the first run.
    (root / "dirty" / "scratch.txt").unlink()
    retry = paved(
        env, "fleet", "update", "fleet.yml", "--only", "failed", "--no-lock", "--json", cwd=root
    )
    retried = {repo["name"]: repo["outcome"] for repo in json.loads(retry.stdout)["repos"]}
    assert set(retried) == {"dirty", "fork", "no-migrate", "no-answers", "gone"}
    assert retried["dirty"] == "updated"
    record = json.loads((root / ".paved-fleet" / "v0.3.0.json").read_text())
    assert record["dirty"]["outcome"] == "updated" and record["gone"]["stage"] == "locate"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, Path, Path]]:
    """Organisation acme with three team repos at v0.1.0 behind the GitHub stand-in."""
    platform = tmp_path / "paved"
    two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    repos = []
    for name in ("churn", "upsell", "risk"):
        team(env, tmp_path, name)
        bare = tmp_path / "remotes" / f"{name}.git"
        repos.append(
            {
                "full_name": f"acme/{name}",
                "clone_url": bare.as_uri(),
                "default_branch": "main",
                "archived": False,
                "bare": str(bare),
            }
        )
    state = tmp_path / "github.json"
    state.write_text(
        json.dumps({"token": "t0k", "repos": repos, "pulls": [], "retry_after_once": True})
    )
    log = tmp_path / "github.log"
    with serving(state, log) as api_url:
        api = {"PAVED_GITHUB_API": api_url, "PAVED_GITHUB_TOKEN": "t0k"}
        yield {**env, **api}, tmp_path, state, log


def test_pull_requests_are_opened_once_capped_and_spaced(
    github: tuple[dict[str, str], Path, Path, Path],
) -> None:
    env, root, state, log = github
    # A team member's branch under the fleet's name: it must get no platform pull request.
    risk = root / "risk"
    (risk / "exfil.py").write_text("print('anything')\n")
    commit_all(risk, env, "Not from the fleet")
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/paved/update-v0.2.0"], risk, env)
    spoofed = refs(root / "remotes" / "risk.git")
    trace = root / "trace.json"
    first = paved(
        {**env, "GIT_TRACE2_EVENT": str(trace)},
        "fleet",
        "update",
        "github:acme",
        "--no-lock",
        "--max-open-prs",
        "1",
        "--json",
        cwd=root,
    )
    assert first.returncode == 1, first.stdout + first.stderr  # risk failed
    # The template is fetched from its source once for the run (into the run's mirror), not
    # once per repo per copier step: every other clone is served from the mirror.
    platform = str((root / "paved").resolve())
    served = [
        event["argv"]
        for event in map(json.loads, trace.read_text().splitlines())
        if event.get("event") == "start"
        and event["argv"][0].endswith("upload-pack")
        and event["argv"][-1].rstrip("/") == platform
    ]
    assert len(served) == 1, served
    outcomes = {r["name"]: r for r in json.loads(first.stdout)["repos"]}
    assert {outcomes[name]["outcome"] for name in ("churn", "upsell")} == {"updated"}
    assert outcomes["risk"]["outcome"] == "failed", outcomes["risk"]
    assert "no fleet run recorded it" in outcomes["risk"]["reason"]
    assert refs(root / "remotes" / "risk.git") == spoofed  # left alone
    pulls = json.loads(state.read_text())["pulls"]
    assert len(pulls) == 1  # the cap
    assert all(p["head"] == "paved/update-v0.2.0" and p["base"] == "main" for p in pulls)
    assert all("Training runs longer." in p["body"] for p in pulls)  # the report is the body
    capped = [r for r in outcomes.values() if r["pull_request"].startswith("not opened")]
    assert len(capped) == 1
    writes = [json.loads(line) for line in log.read_text().splitlines()]
    posts = [w for w in writes if w["method"] == "POST"]
    assert len(posts) == 2  # one answered 429 with Retry-After, then retried
    assert all(b["time"] - a["time"] >= 0.99 for a, b in itertools.pairwise(posts))

    # A re-run commits nothing; it opens the pull request the cap held back, and no other:
    # none for the branch the fleet did not make.
    for _ in range(2):
        again = paved(env, "fleet", "update", "github:acme", "--no-lock", "--json", cwd=root)
        outcomes = {r["name"]: r["outcome"] for r in json.loads(again.stdout)["repos"]}
        assert outcomes == {"churn": "pending", "upsell": "pending", "risk": "failed"}, again.stdout
        pulls = json.loads(state.read_text())["pulls"]
        assert sorted(p["repo"] for p in pulls) == ["acme/churn", "acme/upsell"]
    assert all("Training runs longer." in p["body"] for p in pulls)


TOKEN = "ghp_fleetTokenThatTeamCodeMustNotSee"
#: A build backend in the team repo itself: uv runs it to read the project's dynamic version
#: when it locks. On import it writes down every credential it can reach.
HOSTILE_BACKEND = """
import glob, json, os, subprocess

def _reach():
    seen = {"environ": dict(os.environ), "proc": {}}
    for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as handle:
                seen["proc"][path] = handle.read().decode("latin-1")
        except OSError:
            pass
    asked = "protocol=https\\nhost=github.com\\npath=acme/other-team.git\\n\\n"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    seen["helper"] = subprocess.run(
        ["git", "credential", "fill"], input=asked, capture_output=True, text=True, env=env
    ).stdout
    with open(EVIDENCE, "a") as handle:
        handle.write(json.dumps(seen) + "\\n")

_reach()

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, NAME + "-0.1.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as handle:
        handle.write(f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: 0.1.0\\n")
    return os.path.basename(info)

get_requires_for_build_editable = get_requires_for_build_wheel
prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("only the metadata is read")

build_editable = build_wheel
"""


def pushed_to_main(env: dict[str, str], repo: Path, message: str) -> None:
    """Commit everything in `repo` and push it to its origin's main (as its team would)."""
    commit_all(repo, env, message)
    hook = repo.parent / "remotes" / f"{repo.name}.git" / "hooks" / "pre-receive"
    hook.rename(hook.with_suffix(".off"))
    run(["git", "push", "--quiet", "origin", "HEAD:main"], repo, env)
    hook.with_suffix(".off").rename(hook)


def hostile_repo(env: dict[str, str], root: Path) -> Path:
    """The team repo `hostile`, whose own build backend uv runs when it locks the repo; the
    backend writes what it can reach to the returned file (absent until then)."""
    hostile = team(env, root, "hostile")
    evidence = root / "evidence.jsonl"
    pyproject = hostile / "pyproject.toml"
    text = pyproject.read_text().replace('version = "0.1.0"\n', 'dynamic = ["version"]\n', 1)
    text = text.replace(
        'requires = ["hatchling>=1.25"]\nbuild-backend = "hatchling.build"\n',
        'requires = []\nbuild-backend = "hostile_backend"\nbackend-path = ["."]\n',
    )
    pyproject.write_text(text)
    backend = f"EVIDENCE = {str(evidence)!r}\nNAME = 'hostile'\n" + HOSTILE_BACKEND
    (hostile / "hostile_backend.py").write_text(backend)
    run(["uv", "lock", "--quiet"], hostile, env)
    pushed_to_main(env, hostile, "Version from our own build backend")
    assert evidence.is_file()  # the backend runs whenever uv locks the repo
    evidence.unlink()
    return evidence


def test_one_fleet_run_through_hostile_repos(tmp_path: Path) -> None:
    """Each fault fails its own repo, says why, and leaves it as it was; the healthy repos
    next to them update; team code never reaches the token."""
    platform = tmp_path / "paved"
    two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    remotes = tmp_path / "remotes"

    evidence = hostile_repo(env, tmp_path)

    healthy = team(env, tmp_path, "healthy")
    run(["uv", "lock", "--quiet"], healthy, env)
    pushed_to_main(env, healthy, "Lock")
    # A team member's branch under the fleet's name.
    spoofed = team(env, tmp_path, "spoofed")
    (spoofed / "exfil.py").write_text("print('anything')\n")
    commit_all(spoofed, env, "Not from the fleet")
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/paved/update-v0.2.0"], spoofed, env)
    # Links round a loop and out to the host, where paved check walks.
    loop = team(env, tmp_path, "loop")
    for name, target in (("a", "."), ("b", "."), ("x", "/")):
        (loop / "src" / name).symlink_to(target)
    run(["uv", "lock", "--quiet"], loop, env)
    pushed_to_main(env, loop, "Links and a lock")
    # An alias bomb in the answers.
    bomb = team(env, tmp_path, "bomb")
    answers = bomb / ".copier-answers.yml"
    answers.write_text(answers.read_text() + ALIAS_BOMB)
    pushed_to_main(env, bomb, "Aliases")
    # A template source whose copier.yml is not plain YAML.
    odd = tmp_path / "odd-platform"
    run(["git", "clone", "--quiet", str(platform), str(odd)], tmp_path, env)
    run(["git", "switch", "--quiet", "--detach", "v0.2.0"], odd, env)
    (odd / "copier.yml").write_text((odd / "copier.yml").read_text() + "_extra: !include x.yml\n")
    commit_all(odd, env, "An include")
    run(["git", "tag", "--force", "v0.2.0"], odd, env)
    include = team(env, tmp_path, "include")
    answers = include / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace(PLATFORM_URL, str(odd)))
    assert str(odd) in answers.read_text()
    pushed_to_main(env, include, "Another template")

    secret = "s3cret-Pw0rd"
    manifest = [
        {"url": (remotes / f"{name}.git").as_uri(), "name": name}
        for name in ("hostile", "healthy", "spoofed", "loop", "bomb", "include")
    ]
    manifest += [
        {"url": (remotes / "healthy.git").as_uri(), "name": ".."},
        {"url": f"https://x-access-token:{secret}@127.0.0.1:9/acme/creds.git", "name": "creds"},
    ]
    (tmp_path / "fleet.yml").write_text(yaml.safe_dump(manifest))
    before = {path.name: refs(path) for path in remotes.glob("*.git")}
    # The token as the rollout workflow gives it, and a credential helper that hands it out.
    count = int(env.get("GIT_CONFIG_COUNT", "0"))
    helper = "!f() { echo username=x-access-token; echo password=$PAVED_GITHUB_TOKEN; }; f"
    secrets = {
        "PAVED_GITHUB_TOKEN": TOKEN,
        "GITHUB_TOKEN": TOKEN,
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "credential.https://github.com.helper",
        f"GIT_CONFIG_VALUE_{count}": helper,
    }

    done = paved(
        {**env, **secrets}, "fleet", "update", "fleet.yml", "--to", "v0.2.0", "--json", cwd=tmp_path
    )

    assert done.returncode == 1, done.stdout + done.stderr
    outcomes = {repo["name"]: repo for repo in json.loads(done.stdout)["repos"]}
    for name in ("hostile", "healthy", "loop"):
        assert outcomes[name]["outcome"] == "updated", outcomes[name]
        pushed = run(
            ["git", "log", "-1", "--format=%B", "paved/update-v0.2.0"], remotes / f"{name}.git", env
        )
        assert "Update to the Paved platform v0.2.0" in pushed.stdout
    assert outcomes["loop"]["score"] is not None
    faults = {
        "spoofed": "no fleet run recorded it",
        "bomb": "anchors and aliases are refused",
        "include": "is not plain YAML",
        "..": "'..' is not a repo name",
        "creds": "cannot clone https://127.0.0.1:9/acme/creds.git",
    }
    for name, reason in faults.items():
        assert outcomes[name]["outcome"] == "failed" and reason in outcomes[name]["reason"], (
            outcomes[name]
        )
        if f"{name}.git" in before:
            assert refs(remotes / f"{name}.git") == before[f"{name}.git"], name
    record = (tmp_path / ".paved-fleet" / "v0.2.0.json").read_text()
    assert secret not in done.stdout + done.stderr + record
    reached = evidence.read_text().splitlines()
    assert reached  # the team's backend ran during the update (its re-lock) ...
    for line in reached:
        seen = json.loads(line)
        assert len(seen["proc"]) > 2  # ... and read the other processes' environments
        assert TOKEN not in line, [k for k, v in seen["proc"].items() if TOKEN in v]
        assert "x-access-token" not in seen["helper"]  # the helper was not reached


def test_a_local_branch_an_earlier_push_left_behind_is_pushed(tmp_path: Path) -> None:
    # For a local repo, the local branch was checked: after a failed push, every re-run said
    # "already pushed" while the remote had only main.
    platform = tmp_path / "paved"
    two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    local = team(env, tmp_path, "local")
    origin = tmp_path / "remotes" / "local.git"
    down = origin / "hooks" / "pre-receive"
    down.write_text(PROTECT_MAIN + 'echo "the remote is down for maintenance" >&2; exit 1\n')
    (tmp_path / "fleet.yml").write_text(yaml.safe_dump([{"path": "local", "name": "local"}]))

    first = paved(env, "fleet", "update", "fleet.yml", "--no-lock", "--json", cwd=tmp_path)
    failed = json.loads(first.stdout)["repos"][0]
    assert failed["outcome"] == "failed" and failed["stage"] == "push", failed
    assert "the remote is down for maintenance" in failed["reason"]
    assert "paved/update-v0.2.0" not in refs(origin)

    down.write_text(PROTECT_MAIN)
    again = paved(env, "fleet", "update", "fleet.yml", "--no-lock", "--json", cwd=tmp_path)
    pending = json.loads(again.stdout)["repos"][0]
    assert pending["outcome"] == "pending" and "pushed now" in pending["reason"], pending
    assert f"refs/heads/paved/update-v0.2.0 {failed['commit']}" in refs(origin)
    assert run(["git", "status", "--porcelain"], local, env).stdout == ""

    # Someone moves the branch: reported, no longer the fleet's; moved back, it is again.
    moved = ["git", "push", "--quiet", "--force", "origin", "main:paved/update-v0.2.0"]
    run(moved, local, env)
    again = paved(env, "fleet", "update", "fleet.yml", "--no-lock", "--json", cwd=tmp_path)
    refused = json.loads(again.stdout)["repos"][0]
    assert refused["outcome"] == "failed" and "the fleet recorded" in refused["reason"], refused
    back = f"{failed['commit']}:refs/heads/paved/update-v0.2.0"
    run(["git", "push", "--quiet", "--force", "origin", back], local, env)
    again = paved(env, "fleet", "update", "fleet.yml", "--no-lock", "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["repos"][0]["outcome"] == "pending", again.stdout

    # The team resolves on the branch: it builds on the fleet's commit, so it stays pending.
    run(["git", "switch", "--quiet", "paved/update-v0.2.0"], local, env)
    (local / "RESOLVED.md").write_text("conflicts resolved\n")
    commit_all(local, env, "Resolve")
    run(["git", "push", "--quiet", "origin", "paved/update-v0.2.0"], local, env)
    run(["git", "switch", "--quiet", "main"], local, env)
    again = paved(env, "fleet", "update", "fleet.yml", "--no-lock", "--json", cwd=tmp_path)
    carried = json.loads(again.stdout)["repos"][0]
    assert carried["outcome"] == "pending" and "builds on" in carried["reason"], carried
    assert carried["commit"] == failed["commit"]


def test_without_to_the_release_is_the_platforms_latest_not_a_team_repos(tmp_path: Path) -> None:
    # The release came from the first repo's answers: a team whose answers named a source
    # tagged v9.0.0 failed every other repo of the run.
    platform = tmp_path / "paved"
    two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    elsewhere = tmp_path / "elsewhere"
    run(["git", "clone", "--quiet", str(platform), str(elsewhere)], tmp_path, env)
    run(["git", "tag", "v9.0.0"], elsewhere, env)
    count = int(env["GIT_CONFIG_COUNT"])
    env.update(
        {
            "GIT_CONFIG_COUNT": str(count + 1),
            f"GIT_CONFIG_KEY_{count}": f"url.{elsewhere.resolve().as_uri()}.insteadOf",
            f"GIT_CONFIG_VALUE_{count}": ELSEWHERE,
        }
    )
    first = team(env, tmp_path, "first")
    answers = first / ".copier-answers.yml"
    answers.write_text(answers.read_text().replace(PLATFORM_URL, ELSEWHERE))
    commit_all(first, env, "Take the template from elsewhere")
    team(env, tmp_path, "second")
    manifest = [{"path": "first", "name": "first"}, {"path": "second", "name": "second"}]
    (tmp_path / "fleet.yml").write_text(yaml.safe_dump(manifest))

    done = paved(
        env, "fleet", "update", "fleet.yml", "--dry-run", "--no-lock", "--json", cwd=tmp_path
    )

    report = json.loads(done.stdout)
    assert report["release"] == "v0.2.0", report
    second = next(repo for repo in report["repos"] if repo["name"] == "second")
    assert second["outcome"] == "updated" and second["to_release"] == "v0.2.0", second


def test_a_rollout_in_three_steps_runs_team_code_only_where_no_token_is(tmp_path: Path) -> None:
    """fetch (the token, no team code), update (team code, no token, no push), deliver (the
    token, no team code): only a branch that is one commit on the fetched default branch is
    pushed, whatever the update step's copies and report say."""
    platform = tmp_path / "paved"
    two_releases(platform)
    env = {**tool_env(platform), **GIT_IDENTITY}
    remotes = tmp_path / "remotes"
    evidence = hostile_repo(env, tmp_path)
    for name in ("healthy", "tampered"):
        repo = team(env, tmp_path, name)
        run(["uv", "lock", "--quiet"], repo, env)
        pushed_to_main(env, repo, "Lock")
    spoofed = team(env, tmp_path, "spoofed")
    (spoofed / "exfil.py").write_text("print('anything')\n")
    commit_all(spoofed, env, "Not from the fleet")
    run(["git", "push", "--quiet", "origin", "HEAD:refs/heads/paved/update-v0.2.0"], spoofed, env)
    names = ("hostile", "healthy", "tampered", "spoofed")
    manifest = [{"url": (remotes / f"{name}.git").as_uri(), "name": name} for name in names]
    (tmp_path / "fleet.yml").write_text(yaml.safe_dump(manifest))
    before = {name: refs(remotes / f"{name}.git") for name in names}
    secrets = {"PAVED_GITHUB_TOKEN": TOKEN, "GITHUB_TOKEN": TOKEN}
    handoff = tmp_path / "handoff"

    fetched = paved(
        {**env, **secrets}, "fleet", "fetch", "fleet.yml", "--to", "v0.2.0", "--out", "handoff",
        cwd=tmp_path,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "spoofed: " in fetched.stdout and "already pushed" in fetched.stdout
    assert not evidence.exists()  # step 1 ran no team code
    step2 = ["fleet", "update", "handoff/fleet.yml", "--to", "v0.2.0", "--json"]
    updated = paved(env, *step2, "--state", "handoff/.state", cwd=tmp_path)  # no token at all
    report = json.loads(updated.stdout)
    assert {repo["name"]: repo["outcome"] for repo in report["repos"]} == dict.fromkeys(
        ("hostile", "healthy", "tampered"), "updated"
    ), updated.stdout + updated.stderr
    assert evidence.is_file()  # the team's backend ran in step 2 (its re-lock) ...
    for line in evidence.read_text().splitlines():
        assert TOKEN not in line  # ... where no process held the token
    assert {name: refs(remotes / f"{name}.git") for name in names} == before  # nothing pushed
    # Team code in step 2 could rewrite its copy and the report: a second commit on the
    # branch, reported as the update's, is refused.
    index = json.loads((handoff / "fetched.json").read_text())
    copy = handoff / next(e["copy"] for e in index["repos"] if e["name"] == "tampered")
    run(["git", "switch", "--quiet", "paved/update-v0.2.0"], copy, env)
    (copy / "exfil.py").write_text("print('anything')\n")
    commit_all(copy, env, "Slipped in")
    for repo in report["repos"]:
        if repo["name"] == "tampered":
            repo["commit"] = run(["git", "rev-parse", "HEAD"], copy, env).stdout.strip()
        if repo["name"] == "healthy":  # and what it says is taken as plain, bounded values
            repo.update(conflicts={"not": "a list"}, reason="x" * 100_000, score="100")
    (handoff / "report.json").write_text(json.dumps(report))

    delivered = paved(
        {**env, **secrets}, "fleet", "deliver", "fleet.yml", "--from", "handoff", "--json",
        cwd=tmp_path,
    )  # fmt: skip

    assert delivered.returncode == 1, delivered.stdout + delivered.stderr
    outcomes = {repo["name"]: repo for repo in json.loads(delivered.stdout)["repos"]}
    for name in ("hostile", "healthy"):
        assert outcomes[name]["outcome"] == "updated", outcomes[name]
        bare = remotes / f"{name}.git"
        tip = run(["git", "rev-parse", "paved/update-v0.2.0"], bare, env).stdout.strip()
        assert tip == outcomes[name]["commit"]
        message = run(["git", "log", "-1", "--format=%B", tip], bare, env).stdout
        assert "Update to the Paved platform v0.2.0" in message
    tampered = outcomes["tampered"]
    assert (
        tampered["outcome"] == "failed"
        and "not one commit on the default branch" in (tampered["reason"])
    ), tampered
    assert outcomes["spoofed"]["outcome"] == "failed", outcomes["spoofed"]
    assert "no fleet run recorded it" in outcomes["spoofed"]["reason"]
    for name in ("tampered", "spoofed"):
        assert refs(remotes / f"{name}.git") == before[name]
    record = json.loads((tmp_path / ".paved-fleet" / "v0.2.0.json").read_text())
    assert record["hostile"]["commit"] == outcomes["hostile"]["commit"]
    healthy = record["healthy"]
    assert healthy["conflicts"] == [] and len(healthy["reason"]) == 4000
    assert healthy["score"] is None
    assert TOKEN not in fetched.stdout + delivered.stdout + json.dumps(record)
