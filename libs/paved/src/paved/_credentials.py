"""Credentials the parent holds while team code runs in its children.

A fleet run executes each team repo's code: uv runs a repo's own build backend to read
dynamic metadata, copier runs tasks and migrations in the repo, git runs hooks and filters
the repo's config names. None of those processes may hold a credential. `held()` takes every
credential out of this process's environment (so no child inherits one), wipes it from the
block `/proc/<pid>/environ` shows (so no child reads it from its parent), and gives it back
to the few calls that talk to a remote: clone, ls-remote, push and the GitHub API.

A GitHub token reaches git through a pipe: a credential helper reads it from a file
descriptor only the push (or clone) inherits, never from the environment or a file.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paved._git import git_env
from paved._proc import run

__all__ = [
    "AMBIENT",
    "GITHUB_API",
    "Held",
    "github_token",
    "held",
    "is_credential",
    "redact",
    "without_credentials",
]

GITHUB_API = "https://api.github.com"

#: Variable names that hold a secret (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, *_PASSWORD, ...).
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH(?!OR)|COOKIE",
    re.IGNORECASE,
)
#: Variables that lead to a secret: an agent's socket, a program that answers a prompt, the
#: URL Actions hands OIDC tokens out from.
_HELPERS = {
    "SSH_AUTH_SOCK",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    "GPG_AGENT_INFO",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_URL",
}
#: A URL with a password in it (https://user:secret@host).
_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)
#: The user (and password) part of any URL in a text.
_ANY_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
#: git settings (given as GIT_CONFIG_KEY_n) that hand out or carry a credential.
_SECRET_SETTING = re.compile(r"^(credential\..*|http\..*extraheader|.*sshcommand)$", re.IGNORECASE)
#: What git itself reads to reach a remote (an agent, a prompt answerer, a proxy): the only
#: held variables a remote call's git gets back. Its environment can be read by any process
#: of the same user while it runs (team code runs beside it), so nothing else goes there:
#: a token goes through the pipe.
_GIT_TRANSPORT = re.compile(
    r"^(SSH_AUTH_SOCK|SSH_ASKPASS|GIT_ASKPASS|GIT_SSH|GIT_SSH_COMMAND|GIT_PROXY_COMMAND"
    r"|(HTTPS?|ALL|NO)_PROXY|(https?|all|no)_proxy)$"
)
#: The token the fleet's GitHub calls and pushes use, in the order they are looked for.
TOKEN_VARIABLES = ("PAVED_GITHUB_TOKEN", "GITHUB_TOKEN")


def is_credential(name: str, value: str) -> bool:
    """Whether environment variable `name` (set to `value`) is, or leads to, a secret."""
    return bool(
        name in _HELPERS or _SECRET_NAME.search(name) or _USERINFO.search(value)
    ) and not name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))


@dataclass
class Held:
    """What `held()` took out of the environment: only the parent's remote calls get it."""

    variables: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The GitHub token, if one was set."""
        return github_token(self.variables)

    def git(
        self,
        args: Sequence[str],
        *,
        url: str,
        cwd: Path | None = None,
        timeout: float = 600,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`git <args>` against remote `url`, with the credentials (not checked).

        A user and password written in `url` are taken out of it (and out of `args`): no
        command line, `.git/config` or message shows them. They, or else a GitHub token for an
        https `url` on the host of the GitHub API (`PAVED_GITHUB_API`), reach git through a
        credential helper that reads them from a pipe this call alone inherits; every other
        helper is switched off for the call, so none stores them.
        """
        parts = urllib.parse.urlsplit(url)
        api = os.environ.get("PAVED_GITHUB_API") or GITHUB_API
        host = (urllib.parse.urlsplit(api).hostname or "").removeprefix("api.")
        # A path or file URL (not scp-like `host:path`): git reaches no remote.
        head = url.partition("/")[0]
        local = parts.scheme == "file" or (not parts.scheme and ":" not in head)
        transport = {k: v for k, v in self.variables.items() if _GIT_TRANSPORT.match(k)}
        env = git_env({} if local else transport)
        if parts.username is not None:
            bare = without_credentials(url)
            args = [bare if arg == url else arg for arg in args]
            user = urllib.parse.unquote(parts.username)
            secret = urllib.parse.unquote(parts.password or "")
        elif self.token and parts.scheme == "https" and parts.hostname == host:
            user, secret = "x-access-token", self.token
        else:
            return run(["git", *args], cwd=cwd, env=env, timeout=timeout, input=input, check=False)
        scope = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))
        read, write = os.pipe()
        try:
            os.write(write, f"username={user}\npassword={secret}\n".encode())
            os.close(write)
            write = -1
            helper = f'!f() {{ test "$1" = get && cat /dev/fd/{read}; }}; f'  # any fd number
            auth = ["-c", "credential.helper=", "-c", f"credential.{scope}.helper={helper}"]
            return run(
                ["git", *auth, *args],
                cwd=cwd,
                env=env,
                timeout=timeout,
                input=input,
                check=False,
                pass_fds=(read,),
            )
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)


#: No credentials held: remote calls run with the environment as it is.
AMBIENT = Held()


@contextlib.contextmanager
def held() -> Iterator[Held]:
    """Take the credentials out of `os.environ` (and its git settings) until the block ends.

    Children started inside the block inherit none; the process's own start-up environment
    block, which `/proc/<pid>/environ` shows to its children, is wiped of them too.
    """
    taken = Held({k: v for k, v in os.environ.items() if is_credential(k, v)})
    settings = _git_settings(os.environ)
    kept = [(k, v) for k, v in settings if not _SECRET_SETTING.match(k) and not _USERINFO.search(v)]
    saved = {k: v for k, v in os.environ.items() if k.startswith("GIT_CONFIG_")}
    wiped = set(taken.variables)
    for name in taken.variables:
        os.environ.pop(name, None)
    if len(kept) != len(settings):  # every setting is set anew: none is read from the block
        _set_git_settings(kept)
        wiped |= {name for name in saved if name.startswith("GIT_CONFIG_VALUE_")}
    _wipe_start_environment(wiped)
    try:
        yield taken
    finally:
        os.environ.update(taken.variables)
        for name in [k for k in os.environ if k.startswith("GIT_CONFIG_")]:
            del os.environ[name]
        os.environ.update(saved)


def github_token(env: Mapping[str, str]) -> str:
    """The GitHub token `env` sets: `PAVED_GITHUB_TOKEN`, else `GITHUB_TOKEN`, else ""."""
    return next((env[name] for name in TOKEN_VARIABLES if env.get(name)), "")


def without_credentials(url: str) -> str:
    """`url` without a user or password (`https://token@host/x` -> `https://host/x`)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact(text: str) -> str:
    """`text` with the user and password taken out of every URL in it, for reports."""
    return _ANY_USERINFO.sub(r"\1", text)


def _git_settings(env: Mapping[str, str]) -> list[tuple[str, str]]:
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    except ValueError:
        return []
    return [
        (env.get(f"GIT_CONFIG_KEY_{i}", ""), env.get(f"GIT_CONFIG_VALUE_{i}", ""))
        for i in range(count)
    ]


def _set_git_settings(pairs: list[tuple[str, str]]) -> None:
    for name in [k for k in os.environ if k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))]:
        del os.environ[name]
    os.environ["GIT_CONFIG_COUNT"] = str(len(pairs))
    for i, (key, value) in enumerate(pairs):
        os.environ[f"GIT_CONFIG_KEY_{i}"], os.environ[f"GIT_CONFIG_VALUE_{i}"] = key, value


def _wipe_start_environment(names: set[str]) -> None:
    """Overwrite the values of `names` in the environment block this process started with.

    Only names no longer set, or set anew, are given: the C library reads the others' values
    from that block.

    `os.environ` is a copy: removing a variable from it leaves the block the kernel shows
    as `/proc/<pid>/environ` (to this process's children, among others) as it was. That
    block lies in this process's own memory, between the addresses /proc/self/stat gives as
    env_start and env_end; a value is overwritten with NUL bytes of the same length.
    Outside Linux there is no such file to read, and nothing to do.
    """
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        fields = stat.rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5)
    except (OSError, IndexError, ValueError):
        return
    if not 0 < start < end or end - start > 1 << 24:
        return
    block = ctypes.string_at(start, end - start)
    offset = 0
    for entry in block.split(b"\0"):
        name, _, value = entry.partition(b"=")
        if value and name.decode("utf-8", "replace") in names:
            ctypes.memset(start + offset + len(name) + 1, 0, len(value))
        offset += len(entry) + 1
