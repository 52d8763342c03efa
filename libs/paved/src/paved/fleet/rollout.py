"""`paved fleet update`: one platform release to every team repo, each on its own branch.

For each repo, in parallel: a working copy (a clone of the remote, or a worktree of the
local repo, so the team's checkout is never touched), the branch `paved/update-vX.Y.Z` from
the default branch, `paved update` (the same function, `paved.update.update_project`, run in
one of `jobs` worker processes that import copier once: copier changes its process's
working directory, so two updates never share a process), `paved check`, a commit whose
message carries the release's changelog and the conflict list, a push of that branch only,
and with a GitHub token one pull request whose body is the report.

The template is fetched once per run: a mirror of each template source is made in the
workspace and git's `insteadOf` serves it to every clone copier, `paved update` and uv make.
A record per target release (`<state>/<release>.json`) keeps each repo's outcome, stage,
reason, branch, commit and pull request, merged in under a lock; `only=["failed"]` re-runs
those. A repo whose branch for the target is already pushed at the commit the record holds
is "pending": a re-run makes no commit and no second pull request. A branch of that name at
any other commit is someone else's: reported, never given a pull request. One repo's
failure, whatever it is, never stops the others.

The same run also comes in three steps, for machines where team code could read this
process's memory (a CI runner with sudo): `fleet_fetch` (the credentials; clones only),
`fleet_update` over the fetched copies (no credential; it commits in the copies and pushes
nothing, since they have no remote) and `fleet_deliver` (the credentials; runs no team
code; pushes only a branch that is one commit on the default branch as fetched).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paved._credentials import Held, held, redact
from paved._errors import ExitCode, PavedError, one_line
from paved._git import bare_copy, git, git_env
from paved._proc import run
from paved.checks import check_repo
from paved.fleet.github import GitHub, PullRequests
from paved.fleet.sources import (
    RepoRef,
    branch_tip,
    clone_shallow,
    find_repos,
    local_tip,
    push_url,
)
from paved.releases import compare, latest, release_commits, release_version, update_branch
from paved.repo import read_answers, require_clean
from paved.template import PLATFORM_URL, TemplateClones, identity
from paved.update import UpdateReport, update_project

__all__ = [
    "FETCHED_MANIFEST",
    "UPDATE_REPORT",
    "FleetReport",
    "Outcome",
    "fleet_deliver",
    "fleet_fetch",
    "fleet_update",
    "read_record",
    "show_rollout",
]

Result = Literal["updated", "current", "conflicts", "failed", "skipped", "pending"]
#: What `--only` can name besides a repo: outcomes recorded by the last run.
SELECTIONS = {"failed", "conflicts", "pending"}


@dataclass
class Outcome:
    """One repo's outcome (JSON-ready)."""

    name: str
    outcome: Result = "failed"
    stage: str = "locate"
    reason: str = ""
    from_release: str = ""
    to_release: str = ""
    branch: str = ""
    commit: str = ""
    pull_request: str = ""
    changed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    score: float | None = None
    seconds: float = 0.0


@dataclass
class FleetReport:
    """Every repo's outcome for one target release."""

    release: str
    dry_run: bool
    repos: list[Outcome]

    @property
    def exit_code(self) -> ExitCode:
        """1 if any repo failed, else 0 (conflicts are pushed for the team to resolve)."""
        failed = any(repo.outcome == "failed" for repo in self.repos)
        return ExitCode.FAILED if failed else ExitCode.OK

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: the release, the counts by outcome and every repo's outcome."""
        counts: dict[str, int] = {}
        for repo in self.repos:
            counts[repo.outcome] = counts.get(repo.outcome, 0) + 1
        return {
            "release": self.release,
            "dry_run": self.dry_run,
            "counts": counts,
            "repos": [asdict(repo) for repo in self.repos],
            "exit_code": self.exit_code,
        }


def fleet_update(
    target: str,
    *,
    to: str | None = None,
    dry_run: bool = False,
    jobs: int = 2,
    only: Sequence[str] = (),
    lock: bool = True,
    max_open_prs: int | None = None,
    state: Path = Path(".paved-fleet"),
    platform_url: str = PLATFORM_URL,
    report: Callable[[Outcome], None] | None = None,
    done: Callable[[FleetReport], None] | None = None,
) -> FleetReport:
    """Roll release `to` (default: the latest of `platform_url`) out to `target`'s repos.

    `report` is called with each repo's outcome as it is known; `done` with the whole report
    before the record is written, so a record that cannot be written loses no report.
    """
    repos = find_repos(target)
    # From here on, team code runs in this process's children: the credentials are held
    # apart, for the clones, pushes and API calls this process makes itself.
    with held() as credentials, tempfile.TemporaryDirectory(prefix="paved-fleet-") as scratch:
        workspace = Path(scratch)
        mirrors = _Mirrors(workspace, credentials)
        # Never a team repo's idea of the latest: its answers could name any source.
        release = to or _latest(platform_url, mirrors)
        record_path = state / f"{release}.json"
        record = read_record(record_path)
        chosen = _select(repos, only, record)
        run_ctx = _context(
            credentials,
            workspace,
            release,
            record,
            chosen,
            dry_run=dry_run,
            lock=lock,
            max_open_prs=max_open_prs,
            mirrors=mirrors,
            workers=min(max(1, jobs), len(chosen) or 1),
        )

        outcomes = _each(
            chosen, lambda ref: ref.name, lambda ref: _roll(ref, run_ctx), run_ctx, jobs, report
        )
    return _finish(FleetReport(release, dry_run, outcomes), done, record_path)


def _context(
    credentials: Held,
    workspace: Path,
    release: str,
    record: Mapping[str, Any],
    chosen: Sequence[RepoRef],
    *,
    dry_run: bool = False,
    lock: bool = False,
    max_open_prs: int | None = None,
    mirrors: _Mirrors | None = None,
    workers: int = 1,
) -> _Run:
    """What every repo's part of a run shares (see `_Run`)."""
    api_env = {**os.environ, **credentials.variables}
    return _Run(
        held=credentials,
        release=release,
        recorded={
            name: str(past.get("commit") or "")
            for name, past in record.items()
            if isinstance(past, dict)
        },
        dry_run=dry_run,
        lock=lock,
        workspace=workspace,
        mirrors=mirrors or _Mirrors(workspace, credentials),
        github=GitHub(api_env) if any(ref.github for ref in chosen) else None,
        prs=PullRequests(max_open_prs),
        workers=_Workers(workers, workspace / "templates"),
    )


_Item = TypeVar("_Item")


def _each(
    items: Sequence[_Item],
    name: Callable[[_Item], str],
    work: Callable[[_Item], Outcome],
    ctx: _Run,
    jobs: int,
    report: Callable[[Outcome], None] | None,
) -> list[Outcome]:
    """`work` on every item, `jobs` at a time; an exception fails that item's repo only."""

    def one(item: _Item) -> Outcome:
        try:
            outcome = work(item)
        except Exception as exc:  # even its clean-up failing fails this repo only
            outcome = Outcome(name(item), reason=redact(one_line(exc)), to_release=ctx.release)
        if report:
            report(outcome)
        return outcome

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, items))
    finally:
        ctx.workers.close()


def _finish(
    fleet: FleetReport, done: Callable[[FleetReport], None] | None, record: Path
) -> FleetReport:
    """Hand the report to `done`, then record what was pushed (even if `done` failed)."""
    try:
        if done:
            done(fleet)
    finally:
        if not fleet.dry_run:
            _write_record(record, fleet.repos)
    return fleet


# ------------------------------------------------------------------ a run in three steps

#: What `fleet_fetch` writes into its folder: its index of the repos (only it writes this
#: one), and the manifest of the copies `paved fleet update` updates without credentials;
#: and where `fleet_deliver` looks for that update's JSON report by default.
FETCHED = "fetched.json"
FETCHED_MANIFEST = "fleet.yml"
UPDATE_REPORT = "report.json"


def fleet_fetch(
    target: str,
    *,
    out: Path,
    to: str | None = None,
    only: Sequence[str] = (),
    state: Path = Path(".paved-fleet"),
    platform_url: str = PLATFORM_URL,
) -> dict[str, Any]:
    """Step 1 of 3: a copy of each repo's default branch in `out`; no team code runs.

    The split keeps the credentials out of every process, and every job, that runs team
    code: this step holds them and runs `git clone` and `git ls-remote` only. Step 2 is
    `paved fleet update out/fleet.yml --to <release>` with no credential at all: it commits
    each update on its branch in the copy, which has no remote, so nothing is pushed.
    Step 3, `fleet_deliver`, holds the credentials again and pushes each branch that is one
    commit on the default branch as fetched, and opens the pull requests. A repo whose update
    branch is already pushed is not copied: step 3 settles it against the record.
    """
    repos, out = find_repos(target), out.absolute()
    if out.exists() and any(out.iterdir()):
        raise PavedError(f"{out} is not empty: fetch into a new folder")
    with held() as credentials, tempfile.TemporaryDirectory(prefix="paved-fleet-") as scratch:
        release = to or _latest(platform_url, _Mirrors(Path(scratch), credentials))
        chosen = _select(repos, only, read_record(state / f"{release}.json"))
        branch = update_branch(release)
        entries = [
            _fetch_one(ref, out, f"repos/{number:04d}", branch, credentials)
            for number, ref in enumerate(chosen)
        ]
    manifest = [
        {"path": entry["copy"], "name": entry["name"]}
        for entry in entries
        if entry.get("copy") and not entry.get("tip")
    ]
    index = {"release": release, "repos": entries}
    (out / FETCHED).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (out / FETCHED_MANIFEST).write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return index


def _fetch_one(ref: RepoRef, out: Path, copy: str, branch: str, held: Held) -> dict[str, Any]:
    """`ref`'s entry in the index: its copy, default branch and commit, or why not."""
    entry: dict[str, Any] = {"name": ref.name}
    try:
        if ref.problem:
            raise PavedError(ref.problem)
        _, tip = _tips(ref, branch, held)
        dest = out / copy
        dest.parent.mkdir(parents=True, exist_ok=True)
        if ref.path is not None:
            require_clean(ref.path)
            default = ref.branch or _default_branch(ref.path)
            clone = ["clone", "--quiet", "--no-tags", "--branch", default, "--", str(ref.path)]
            git(dest.parent, *clone, str(dest))
        else:
            clone_shallow(ref, dest, held)
            default = ref.branch or git(dest, "symbolic-ref", "--short", "HEAD")
        git(dest, "remote", "remove", "origin")
        entry.update(copy=copy, default=default, base=git(dest, "rev-parse", "HEAD"), tip=tip)
    except Exception as exc:  # this repo fails alone, in step 3's report
        entry["problem"] = redact(one_line(exc))
    return entry


def fleet_deliver(
    target: str,
    *,
    handed: Path,
    update_report: Path | None = None,
    fetched: Path | None = None,
    jobs: int = 2,
    max_open_prs: int | None = None,
    state: Path = Path(".paved-fleet"),
    report: Callable[[Outcome], None] | None = None,
    done: Callable[[FleetReport], None] | None = None,
) -> FleetReport:
    """Step 3 of 3 (see `fleet_fetch`): push each update branch step 2 made, open its PR.

    `handed` is the folder step 1 fetched into and step 2 updated in; `update_report` is
    step 2's `--json` report (default: `handed/report.json`); `fetched` is step 1's own
    index (default: the one in `handed`: in CI, pass the copy step 1 uploaded, which step
    2's job could not have changed). A branch is pushed only if it is the update branch, at
    the commit step 2 reported, one commit on the default branch exactly as step 1 fetched
    it. Nothing of a repo's code runs.
    """
    handed = handed.absolute()
    index = _read_index(fetched or handed / FETCHED)
    release = str(index["release"])
    updated = _read_json(update_report or handed / UPDATE_REPORT, "a paved fleet update report")
    if updated.get("release") != release:
        raise PavedError(
            f"the update report is for {updated.get('release')!r}, the fetch for {release}"
        )
    repos = updated.get("repos")
    updates = {
        str(item.get("name")): item
        for item in (repos if isinstance(repos, list) else [])
        if isinstance(item, dict)
    }
    refs = {ref.name: ref for ref in find_repos(target)}
    record_path = state / f"{release}.json"
    record = read_record(record_path)
    with held() as credentials, tempfile.TemporaryDirectory(prefix="paved-fleet-") as scratch:
        workspace = Path(scratch)
        entries = [entry for entry in index["repos"] if isinstance(entry, dict)]
        chosen = [refs[str(entry.get("name"))] for entry in entries if entry.get("name") in refs]
        # No update runs here: the workers are never started.
        run_ctx = _context(
            credentials, workspace, release, record, chosen, max_open_prs=max_open_prs
        )

        def settle(entry: Mapping[str, Any]) -> Outcome:
            name = str(entry.get("name"))
            return _deliver_one(refs.get(name), entry, updates.get(name), handed, run_ctx)

        outcomes = _each(
            entries, lambda entry: str(entry.get("name")), settle, run_ctx, jobs, report
        )
    return _finish(FleetReport(release, False, outcomes), done, record_path)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`, or a PavedError saying it is not `what`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PavedError(f"{path} is not {what}: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise PavedError(f"{path} is not {what}: not a JSON object")
    return data


def _read_index(path: Path) -> dict[str, Any]:
    index = _read_json(path, "a fetch's index")
    if not isinstance(index.get("repos"), list):
        raise PavedError(f"{path} is not a fetch's index (no release and repos)")
    release_version(str(index.get("release")))  # a release name, or a PavedError
    return index


def _deliver_one(
    ref: RepoRef | None,
    entry: Mapping[str, Any],
    update: Mapping[str, Any] | None,
    handed: Path,
    ctx: _Run,
) -> Outcome:
    name = str(entry.get("name"))
    outcome = Outcome(name=name, to_release=ctx.release)
    branch = update_branch(ctx.release)
    holder = Path(tempfile.mkdtemp(prefix="repo-", dir=ctx.workspace))
    try:
        if ref is None:
            raise PavedError(f"{name} is not in the fleet any more")
        if entry.get("problem"):
            raise PavedError(str(entry["problem"]))
        default, base = str(entry["default"]), str(entry["base"])
        if entry.get("tip"):
            outcome.stage = "branch"
            run(["git", "init", "--quiet", str(holder / "work")], env=git_env(), timeout=120)
            if not _already_made(
                ref, holder / "work", ctx, outcome, branch=branch, default=default
            ):
                raise PavedError(f"{branch} was deleted since the fetch: re-run to update")
            return outcome
        if update is None:
            raise PavedError("the update report has no outcome for it")
        _take_update(outcome, update)
        if outcome.outcome not in {"updated", "conflicts"}:
            return outcome
        outcome.stage = "verify"
        commit = _one_commit(
            handed / str(entry["copy"]), holder / "clean.git", branch, update, base
        )
        outcome.branch, outcome.commit = branch, commit
        message = git(holder / "clean.git", "log", "-1", "--format=%B", commit)
        _hand_over(ref, holder / "clean.git", ctx, outcome, default=default, message=message)
        outcome.stage = "done"
    except Exception as exc:  # whatever a repo or its copy holds fails that repo only
        outcome.outcome = "failed"
        outcome.reason = one_line(exc)
    finally:
        outcome.reason = redact(str(outcome.reason))
        shutil.rmtree(holder, ignore_errors=True)
    return outcome


def _take_update(outcome: Outcome, update: Mapping[str, Any]) -> None:
    """Step 2's outcome for the repo, as plain bounded values.

    Step 2's job ran team code, which could have written anything into the report.
    """
    if update.get("outcome") not in get_args(Result):
        raise PavedError(f"the update report gives it no outcome a run gives: {update!r:.200}")
    outcome.outcome = update["outcome"]
    outcome.stage, outcome.reason, outcome.from_release = (
        str(update.get(key) or "")[:4000] for key in ("stage", "reason", "from_release")
    )
    outcome.changed, outcome.conflicts = (
        [str(v)[:500] for v in values[:1000]] if isinstance(values, list) else []
        for values in (update.get("changed"), update.get("conflicts"))
    )
    score = update.get("score")
    outcome.score = float(score) if isinstance(score, (int, float)) and 0 <= score <= 100 else None


def _hand_over(
    ref: RepoRef, source: Path, ctx: _Run, outcome: Outcome, *, default: str, message: str
) -> None:
    """Push `outcome.branch` (at `outcome.commit`) from `source`; open its pull request.

    A local repo without an origin keeps the branch itself: fetched into it, unless it is
    there already (a worktree of the repo made it).
    """
    branch = outcome.branch
    if branch == default:  # neither pushed nor fetched over the default branch
        raise PavedError(f"refusing to push to the default branch {default}")
    outcome.stage = "push"
    url = push_url(ref)
    if url:
        _push(url, source, ctx, branch=branch, default=default)
    elif ref.path is not None and local_tip(ref.path, branch) != outcome.commit:
        spec = f"refs/heads/{branch}:refs/heads/{branch}"
        git(ref.path, "fetch", "--quiet", "--", str(source), spec)
    if ctx.github and ref.github:
        outcome.stage = "pull request"
        outcome.pull_request = ctx.prs.open(
            ctx.github, ref.github, branch, default, _title(ctx.release), message
        )


def _one_commit(copy: Path, clean: Path, branch: str, update: Mapping[str, Any], base: str) -> str:
    """The update's commit, fetched from the copy into the bare repo `clean`.

    Only if it is the tip of `branch`, one commit on `base`; else a PavedError saying what
    it is instead.
    """
    commit = str(update.get("commit") or "")
    if update.get("branch") != branch or not commit:
        raise PavedError(f"the update reported no commit on {branch}")
    bare_copy(copy, branch, clean)
    tip = local_tip(clean, branch)
    if tip != commit:
        raise PavedError(f"{branch} is at {tip[:12]} in the copy, not {commit[:12]} as reported")
    parents = git(clean, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    if parents != [base]:
        raise PavedError(
            f"{branch} is not one commit on the default branch as fetched ({base[:12]}): "
            f"its commit's parents are {', '.join(p[:12] for p in parents) or 'none'}"
        )
    return commit


# ------------------------------------------------------------------ one repo


@dataclass
class _Run:
    held: Held
    release: str
    #: Each repo's commit on its update branch, as the record of this release has it.
    recorded: Mapping[str, str]
    dry_run: bool
    lock: bool
    workspace: Path
    mirrors: _Mirrors
    github: GitHub | None
    prs: PullRequests
    workers: _Workers


def _roll(ref: RepoRef, ctx: _Run) -> Outcome:
    started = time.perf_counter()
    outcome = Outcome(name=ref.name, to_release=ctx.release)
    branch = update_branch(ctx.release)
    # The working copy's folder never comes from the repo's name (`..` would be the run's).
    holder = Path(tempfile.mkdtemp(prefix="repo-", dir=ctx.workspace))
    work = holder / "work"
    created = False
    try:
        outcome.stage = "locate"
        if ref.problem:
            raise PavedError(ref.problem)
        default = _checkout(ref, work, ctx.held)
        outcome.stage = "read"
        answers = read_answers(work)
        outcome.from_release = str(answers.get("_commit", ""))
        env = ctx.mirrors.serve(str(answers.get("_src_path", "")))
        step = compare(outcome.from_release, ctx.release)
        if step == "current":
            outcome.outcome = "current"
            return outcome
        if step == "older":
            outcome.outcome, outcome.reason = (
                "skipped",
                (f"on {outcome.from_release}, newer than {ctx.release}: never downgraded"),
            )
            return outcome
        outcome.stage = "branch"
        if _already_made(ref, work, ctx, outcome, branch=branch, default=default):
            return outcome
        if not ctx.dry_run:  # a dry run stays detached: it leaves no branch behind
            git(work, "switch", "--quiet", "-c", branch)
            created = True
        outcome.stage = "update"
        update = _paved_update(work, ctx, env)
        outcome.changed = list(update.changed)
        outcome.conflicts = [f"{c.path} ({c.kind}, {c.markers} markers)" for c in update.conflicts]
        if update.status == "failed":
            raise PavedError(update.reason or "paved update failed")
        if update.status == "current":
            outcome.outcome = "current"
            return outcome
        outcome.outcome = "conflicts" if update.status == "conflicts" else "updated"
        _deliver(ref, work, ctx, outcome, update, branch=branch, default=default)
    except Exception as exc:  # whatever a repo or its template holds fails that repo only
        outcome.outcome = "failed"
        outcome.reason = one_line(exc)
    finally:
        outcome.reason = redact(outcome.reason)  # a URL's user and password are never shown
        outcome.seconds = round(time.perf_counter() - started, 2)
        _cleanup(ref, work)
        shutil.rmtree(holder, ignore_errors=True)
        if ref.path is not None and created and not outcome.commit:
            git(ref.path, "branch", "-D", branch, check=False)  # nothing of a failed run stays
    return outcome


def _already_made(
    ref: RepoRef, work: Path, ctx: _Run, outcome: Outcome, *, branch: str, default: str
) -> bool:
    """Whether `branch` is already made (the repo is then "pending"); refuse one not ours.

    The branch counts only at the commit a fleet run recorded for this release: a branch of
    that name anyone else pushed (it could hold anything) is reported, and gets no pull
    request. A local repo's branch that an earlier run made but could not push is pushed.
    """
    pushed, tip = _tips(ref, branch, ctx.held)
    if not tip:
        return False
    recorded = ctx.recorded.get(ref.name, "")
    if tip != recorded and recorded and _builds_on(ref, work, ctx.held, branch, tip, recorded):
        # The team carried on from the fleet's commit (resolved its conflicts, say): still
        # the fleet's branch, and the team's to merge; its pull request is left as it is.
        outcome.outcome, outcome.branch, outcome.commit = "pending", branch, recorded
        outcome.reason = f"{branch} builds on the fleet's commit with the team's: merge it"
        return True
    if tip != recorded:
        outcome.commit = recorded  # still the fleet's: the record keeps it
        made = f"the fleet recorded {recorded[:12]}" if recorded else "no fleet run recorded it"
        raise PavedError(
            f"{branch} already exists at {tip[:12]}, and {made}: it is left alone and gets no "
            f"pull request. Rename it if it is someone's work, or delete it, then re-run"
        )
    outcome.outcome, outcome.branch, outcome.commit = "pending", branch, tip
    outcome.reason = f"{branch} is already pushed: review and merge it"
    if ctx.dry_run:
        return True
    url = push_url(ref)
    if not pushed and ref.path is not None and url:
        outcome.stage = "push"
        _push(url, ref.path, ctx, branch=branch, default=default)
        outcome.reason = f"{branch} is pushed now (an earlier push failed): review and merge it"
    if ctx.github and ref.github:
        # One pull request per branch: found, or opened now if an earlier run was capped by
        # --max-open-prs (the branch's last commit message is the report).
        outcome.stage = "pull request"
        body = _branch_message(ref, work, branch, tip, ctx.held)
        outcome.pull_request = ctx.prs.open(
            ctx.github, ref.github, branch, default, _title(ctx.release), body, keep=True
        )
    return True


def _tips(ref: RepoRef, branch: str, held: Held) -> tuple[str, str]:
    """Where `branch` is, as (pushed, tip).

    `pushed` is its commit where the fleet pushes it; `tip` is that, or for a local repo the
    local branch an earlier push left behind.
    """
    pushed = branch_tip(ref, branch, held)
    return pushed, pushed or (local_tip(ref.path, branch) if ref.path is not None else "")


def _builds_on(ref: RepoRef, work: Path, held: Held, branch: str, tip: str, commit: str) -> bool:
    """Whether `tip` of `branch` descends from `commit` (looked for 50 commits deep)."""
    url, where = push_url(ref), ref.path
    if url:
        where = work
        if not _fetch_tip(url, branch, tip, work, held, depth=50):
            return False  # moved again while it was read: not settled, so not ours
    merge_base = ["git", "merge-base", "--is-ancestor", commit, tip]
    return not run(merge_base, cwd=where, env=git_env(), check=False).returncode


def _fetch_tip(url: str, branch: str, tip: str, work: Path, held: Held, *, depth: int) -> bool:
    """Fetch `branch` from `url` into `work` (`depth` commits); whether it is still at `tip`."""
    spec = f"refs/heads/{branch}"
    held.git(["fetch", "--quiet", "--depth", str(depth), "--", url, spec], url=url, cwd=work)
    return git(work, "rev-parse", "FETCH_HEAD", check=False) == tip


def _deliver(
    ref: RepoRef,
    work: Path,
    ctx: _Run,
    outcome: Outcome,
    update: UpdateReport,
    *,
    branch: str,
    default: str,
) -> None:
    """Score the updated copy; unless a dry run, commit, push the branch, open the PR."""
    outcome.stage = "check"
    outcome.score = round(check_repo(work).score, 1)
    if ctx.dry_run:
        return
    outcome.stage = "commit"
    message = _message(ctx.release, update, outcome)
    git(work, "add", "--all")
    git(work, *identity(work), "commit", "--quiet", "--no-verify", "-m", message)
    outcome.commit = git(work, "rev-parse", "HEAD")
    outcome.branch = branch
    _hand_over(ref, work, ctx, outcome, default=default, message=message)
    outcome.stage = "done"


def _checkout(ref: RepoRef, work: Path, held: Held) -> str:
    """A working copy of the default branch at `work`; returns the default branch."""
    work.parent.mkdir(parents=True, exist_ok=True)
    if ref.path is not None:
        if not (ref.path / ".git").exists():
            raise PavedError(f"{ref.path} is not a git repository")
        require_clean(ref.path)
        default = ref.branch or _default_branch(ref.path)
        git(ref.path, "worktree", "add", "--quiet", "--detach", str(work), default)
        return default
    clone_shallow(ref, work, held)
    return ref.branch or git(work, "symbolic-ref", "--short", "HEAD")


def _default_branch(repo: Path) -> str:
    remote_head = git(repo, "symbolic-ref", "--short", "refs/remotes/origin/HEAD", check=False)
    if remote_head:
        return remote_head.removeprefix("origin/")
    return git(repo, "symbolic-ref", "--short", "HEAD")


def _branch_message(ref: RepoRef, work: Path, branch: str, tip: str, held: Held) -> str:
    """The message of the fleet's commit `tip` on `branch` (the report it carries)."""
    if ref.path is None and not _fetch_tip(str(ref.url), branch, tip, work, held, depth=1):
        raise PavedError(f"{branch} moved while it was read: re-run to check it again")
    return git(ref.path or work, "log", "-1", "--format=%B", tip, check=False)


def _paved_update(work: Path, ctx: _Run, env: Mapping[str, str]) -> UpdateReport:
    """`paved update` of `work` in a worker process: its report."""
    return ctx.workers.run(_update_in_worker, str(work), ctx.release, ctx.lock, dict(env))


def _push(url: str, work: Path, ctx: _Run, *, branch: str, default: str) -> None:
    """Push `branch` to `url`, and only it; refuse a branch that is the default one.

    The push, which holds the credentials, is made from a bare repository this process has
    just made, never from `work`: the team's code ran there, and may have written hooks or
    settings (a credential helper, a proxy, a URL rewrite) into its `.git`.
    """
    if branch == default:
        raise PavedError(f"refusing to push to the default branch {default}")
    clean = Path(tempfile.mkdtemp(prefix="push-", dir=ctx.workspace))
    try:
        bare_copy(work, branch, clean)
        spec = f"refs/heads/{branch}:refs/heads/{branch}"
        done = ctx.held.git(["push", "--quiet", "--", url, spec], url=url, cwd=clean)
        if done.returncode:
            raise PavedError(f"cannot push {branch} to {url}: {done.stderr.strip()[-2000:]}")
    finally:
        shutil.rmtree(clean, ignore_errors=True)


def _cleanup(ref: RepoRef, work: Path) -> None:
    if ref.path is not None and work.exists():
        git(ref.path, "worktree", "remove", "--force", str(work), check=False)
    shutil.rmtree(work, ignore_errors=True)


def _title(release: str) -> str:
    return f"Update to the Paved platform {release}"


def _message(release: str, update: UpdateReport, outcome: Outcome) -> str:
    lines = [_title(release), ""]
    lines.append(f"From {outcome.from_release} by `paved fleet update`.")
    if update.changelog:
        lines += ["", update.changelog.strip()]
    if outcome.conflicts:
        lines += ["", "Conflicts to resolve before merging:"]
        lines += [f"- {conflict}" for conflict in outcome.conflicts]
    if outcome.score is not None:
        lines += ["", f"paved check: {outcome.score:.0f} %"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the workers

_T = TypeVar("_T")


class _Workers:
    """`count` processes that each run one update at a time, copier imported once in each.

    A worker that dies (killed, out of memory) fails the repo it was updating; the repos
    after it get new workers.
    """

    def __init__(self, count: int, templates: Path) -> None:
        self.count, self.templates = count, templates
        self.lock = threading.Lock()
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.count,
            # Not fork: the parent has threads (one per job), which fork does not copy safely.
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(str(self.templates),),
        )

    def run(self, function: Callable[..., _T], *args: Any) -> _T:
        """`function(*args)` in a worker; its result."""
        with self.lock:
            pool = self.pool
        try:
            return pool.submit(function, *args).result()
        except BrokenProcessPool as exc:
            with self.lock:
                if self.pool is pool:
                    self.pool = self._start()
            raise PavedError("the worker running paved update died (killed? no memory?)") from exc

    def close(self) -> None:
        self.pool.shutdown()


#: This worker's template clones, one per source, made at its first update from each.
_WORKER: dict[str, TemplateClones] = {}


def _start_worker(templates: str) -> None:
    """A worker's start: its own template clones, and copier imported once, not per repo.

    copier refreshes and prunes the mirror it reads a template from on every run: two
    updates sharing one would race. A worker runs one update at a time, so clones per
    worker never race, and each worker clones a template (from the run's mirror) once.
    """
    _WORKER["clones"] = TemplateClones(Path(templates) / str(os.getpid()))
    import copier  # noqa: F401


def _update_in_worker(work: str, release: str, lock: bool, env: dict[str, str]) -> UpdateReport:
    """`paved update` of `work`, in this worker, with `env` as its environment."""
    with _environment(env):
        try:
            return update_project(Path(work), to=release, lock=lock, clones=_WORKER["clones"])
        except PavedError as exc:  # a refusal is a report too, as the CLI prints it
            return UpdateReport(work, "", "", release, "failed", reason=str(exc))


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """`env` as this process's environment (and working directory kept) for one update.

    copier runs git through plumbum, which copied `os.environ` when it was imported: its
    copy is set too, and both are put back afterwards.
    """
    from plumbum import local

    saved, cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    try:
        with local.env():
            local.env.clear()
            local.env.update(env)
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(cwd)


# ------------------------------------------------------------------ the run


class _Mirrors:
    """One mirror clone per template source, made the first time a repo names it."""

    def __init__(self, workspace: Path, held: Held) -> None:
        self.workspace, self.held = workspace, held
        self.mirrors: dict[str, Path] = {}
        self.lock = threading.Lock()

    def serve(self, source: str) -> dict[str, str]:
        """Mirror `source` (once) and return the environment that fetches it from there."""
        with self.lock:
            if source and source not in self.mirrors:
                mirror = self.workspace / f"template-{len(self.mirrors)}.git"
                done = self.held.git(
                    ["clone", "--quiet", "--mirror", "--", source, str(mirror)], url=source
                )
                if done.returncode == 0:  # else the update itself says why it cannot fetch
                    self.mirrors[source] = mirror
            return _mirror_env(self.mirrors)


def _latest(source: str, mirrors: _Mirrors) -> str:
    mirrors.serve(source)
    mirror = mirrors.mirrors.get(source)
    return latest(release_commits(str(mirror or source)), source)


def _mirror_env(mirrors: Mapping[str, Path]) -> dict[str, str]:
    """The environment of this process, every template source served from its mirror."""
    env = git_env()
    pairs = [
        (env.get(f"GIT_CONFIG_KEY_{i}", ""), env.get(f"GIT_CONFIG_VALUE_{i}", ""))
        for i in range(int(env.get("GIT_CONFIG_COUNT", "0") or 0))
    ]
    # A mirror replaces any other rewrite of the same URL (two would be ambiguous).
    pairs = [(k, v) for k, v in pairs if not (k.lower().endswith(".insteadof") and v in mirrors)]
    # A path, not a file:// URL: git clones a local path with hard links, not a pack.
    pairs += [(f"url.{path}.insteadOf", source) for source, path in mirrors.items()]
    for key in [k for k in env if k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))]:
        del env[key]
    env["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def read_record(path: Path) -> dict[str, Any]:
    """A release's fleet record (`<state>/<release>.json`): each repo's last outcome by name.

    {} when there is none yet; a PavedError when the file is not a record.
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # not JSON, not UTF-8, not readable
        raise PavedError(
            f"{path} is not a fleet record ({exc}): restore it, or delete it to start the "
            "release's record afresh"
        ) from exc
    return data if isinstance(data, dict) else {}


def _write_record(path: Path, outcomes: Sequence[Outcome]) -> None:
    """Merge `outcomes` into the record at `path`, whole or not at all.

    Under a lock, so a concurrent run's outcomes are kept; to a temporary file renamed over
    the record, so a full disk leaves the last record as it was.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = read_record(path)
            for outcome in outcomes:
                entry = asdict(outcome)
                # A run that failed before it reached the branch (a clone that did not
                # answer) knows no commit: the one the fleet made stays recorded.
                past = record.get(outcome.name)
                if not entry["commit"] and isinstance(past, dict) and past.get("commit"):
                    entry["commit"] = past["commit"]
                record[outcome.name] = entry
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            try:
                os.fchmod(fd, 0o644)  # readable by the platform team, as before (not 0600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, indent=2) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
    except OSError as exc:
        raise PavedError(
            f"the report above is complete, but the record {path} could not be written: {exc}"
        ) from exc


def _select(
    repos: Sequence[RepoRef], only: Sequence[str], record: Mapping[str, Any]
) -> list[RepoRef]:
    if not only:
        return list(repos)
    names = {ref.name for ref in repos}
    unknown = [item for item in only if item not in SELECTIONS and item not in names]
    if unknown:
        raise PavedError(
            f"--only {', '.join(unknown)}: name a repo of the fleet or one of "
            f"{', '.join(sorted(SELECTIONS))}"
        )
    wanted = {item for item in only if item in names}
    wanted |= {name for name, past in record.items() if past.get("outcome") in set(only)}
    return [ref for ref in repos if ref.name in wanted]


def show_rollout(report: FleetReport, console: Console) -> None:
    """The rollout's report as a table: one row per repo."""
    title = f"{report.release}{' (dry run)' if report.dry_run else ''}"
    table = Table(title=title, title_justify="left")
    for column in ("repo", "outcome", "from", "branch / pull request", "score", "reason"):
        table.add_column(column)
    for repo in report.repos:
        where = repo.pull_request or repo.branch
        score = "" if repo.score is None else f"{repo.score:.0f} %"
        reason = repo.reason or "; ".join(repo.conflicts)
        table.add_row(
            escape(repo.name), repo.outcome, repo.from_release, escape(where), score, escape(reason)
        )
    console.print(table)
