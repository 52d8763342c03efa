"""Running a team repo's workflows under act, as the workflows tier does.

act runs the jobs on this host (`-P ubuntu-latest=-self-hosted`) and serves the platform's
reusable workflows from a platform clone (`--local-repository acme/paved@<sha>=...`);
GitHub's artifact store, out of reach here, is stood in for by two local actions
(tests/workflows/stand-ins).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

from ci.snapshot import LOCK_ENV

ACT = str(Path(sys.executable).parent / "act")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STAND_INS = Path(__file__).parents[1] / "workflows" / "stand-ins"
#: The artifact and cache actions the workflows use, and the stand-ins that serve them here.
ARTIFACT_ACTIONS = {
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": "download-artifact",
    "actions/cache@0057852bfaa89a56745cba8c7296529d2fc39830": "cache",
}


#: GitHub numbers every workflow run; act calls each one run 1 unless told.
RUN_IDS = itertools.count(1000)


class Team:
    """A team repo, its environment, and the platform clone its workflows are served from."""

    def __init__(self, repo: Path, env: dict[str, str], clone: Path, sha: str, work: Path) -> None:
        self.repo, self.env, self.clone, self.sha, self.work = repo, env, clone, sha, work
        self.canary = work / "canary"
        #: Arguments every run of this team's workflows gets (a GitHub stand-in's, say).
        self.extra: list[str] = []

    def event(self, ref: str, inputs: dict[str, str] | None = None) -> Path:
        message = f'x"; touch {self.canary}; echo "'
        event: dict[str, object] = {
            "ref": ref,
            "repository": {
                "default_branch": "main",
                "full_name": "acme/iris-demo",
                "name": "iris-demo",
                "owner": {"login": "acme"},
            },
            "head_commit": {"message": message, "id": self.sha},
        }
        if inputs is not None:  # a workflow_dispatch's inputs
            event["inputs"] = inputs
        path = self.work / "push.json"
        path.write_text(json.dumps(event))
        return path

    def act(
        self,
        workflow: str,
        *extra: str,
        ref: str = "refs/heads/main",
        event: str = "push",
        inputs: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run one workflow on an event (push, or workflow_dispatch with `inputs`); return the
        exit code and the plain output."""
        artifacts = self.work / "artifacts"
        stand_ins = [
            arg
            for action, folder in ARTIFACT_ACTIONS.items()
            for arg in ("--local-repository", f"{action}={STAND_INS / folder}")
        ]
        lock = [arg for key, value in LOCK_ENV.items() for arg in ("--env", f"{key}={value}")]
        done = subprocess.run(
            [
                ACT,
                event,
                "-W",
                f".github/workflows/{workflow}",
                "-P",
                "ubuntu-latest=-self-hosted",
                "--local-repository",
                f"acme/paved@{self.sha}={self.clone}",
                *stand_ins,
                "--env",
                f"PAVED_TEST_ARTIFACTS={artifacts}",
                "--env",  # each act run is a new workflow run, as on GitHub (caches key on it)
                f"GITHUB_RUN_ID={next(RUN_IDS)}",
                *lock,
                "-e",
                str(self.event(ref, inputs)),
                *self.extra,
                *extra,
            ],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        return done.returncode, ANSI.sub("", done.stdout + done.stderr)
