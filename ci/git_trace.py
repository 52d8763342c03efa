"""Reading git's trace2 event files: how many git processes ran, and which ones fetched."""

from __future__ import annotations

import json
from pathlib import Path


def git_trace(trace: Path, source: Path) -> tuple[int, int, int, float]:
    """What git did, from a trace2 file: (processes, template fetches, uv's fetches, seconds).

    A template fetch is a clone or fetch that reached the template repository at `source`
    (it started `git-upload-pack` there); a fetch with nothing to fetch from (copier
    refreshing a mirror without a remote) and a clone of another repository (uv checking
    out of its cache) do not count. uv's own fetches of the locked platform packages from
    the source (into its cache, `--update-head-ok`) are counted apart. Seconds are those of
    git processes started by a tool, not by git.
    """
    processes = template = uv = 0
    seconds = 0.0
    argv: dict[str, list[str]] = {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start":
            processes += 1
            argv[event["sid"]] = event.get("argv", [])
        elif event.get("event") == "child_start":
            command = argv.get(event["sid"], [])
            reaching = str(source) in " ".join(event.get("argv", []))
            reaching &= str(event.get("child_class", "")).startswith("transport/")
            if reaching and ("clone" in command or "fetch" in command):
                if "--update-head-ok" in command:
                    uv += 1
                else:
                    template += 1
        elif event.get("event") == "exit" and "/" not in event.get("sid", "/"):
            seconds += float(event.get("t_abs", 0.0))
    return processes, template, uv, seconds
