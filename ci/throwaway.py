"""Throwaway platform releases with real differences, for the update tier and its benchmark.

`two_releases()` makes a platform repo whose v0.1.0 is this checkout's working tree and
whose v0.2.0 changes the template the way a real release does: a new README section, a
changed default in params.yaml, a removed file (.dvcignore), and a changelog entry; v0.2.0
is cut with ci/release.py.
"""

from __future__ import annotations

from pathlib import Path

from ci.golden_path import run, tool_env
from ci.release import release
from ci.snapshot import GIT_IDENTITY, snapshot

TEMPLATE = Path("templates") / "ml-project"
NEW_SECTION = "## Added in the second release\n\nA line every team repo gets.\n"
CHANGELOG_LINE = "- Training runs longer."


def two_releases(repo: Path) -> tuple[str, str]:
    """Make the platform repo at `repo` with releases v0.1.0 and v0.2.0; return their SHAs."""
    a_sha = snapshot(repo, tag="v0.1.0")
    template = repo / TEMPLATE
    readme = template / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n" + NEW_SECTION)
    params = template / "params.yaml.jinja"
    params.write_text(params.read_text().replace("  max_iter: 500", "  max_iter: 800"))
    (template / ".dvcignore").unlink()
    changelog = repo / "docs" / "changelog.md"
    changelog.write_text(
        changelog.read_text().replace(
            "## [Unreleased]\n", f"## [Unreleased]\n\n### Changed\n{CHANGELOG_LINE}\n", 1
        )
    )
    env = {**tool_env(repo), **GIT_IDENTITY}
    run(["git", "add", "--all"], repo, env)
    run(["git", "commit", "--quiet", "-m", "Template: longer training"], repo, env)
    release(repo, "0.2.0")
    return a_sha, run(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()
