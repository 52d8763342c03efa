"""Model service throughput and latency: the generated BentoML service against
`mlflow models serve` of the same champion (the anchor), measured in the same run, with
the model's own `predict` per row as the floor.

    uv run python benchmarks/service.py [--seconds 8] [--rounds 3]

Load comes from wrk (Debian package), which corrects for coordinated omission: a stall at
concurrency 1 adds padded samples, so its p99 is the pessimistic one. A plain keep-alive
Python client is reported beside it at concurrency 1. Every server is measured in each of
`--rounds` rounds and every figure is the median over them. Every run is bounded in time and
sends traffic to 127.0.0.1 only.

Targets, each checked and printed (MISSED and exit 1 when one is missed): at least 5x
`mlflow models serve`'s req/s at concurrency 1 and 8, and a p99 of at most 3 ms at
concurrency 1 (wrk's). The generated service also runs with the prediction log on at rate
1.0 (every request recorded): at most 10 % less throughput than with it off, and a p99 at
most 1 ms higher at concurrency 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastparquet import ParquetFile

from benchmarks.targets import Target, report
from ci.golden_path import IRIS_ROW, Service, run, serve, trained_repo

ROOT = Path(__file__).resolve().parents[1]

FEATURES = list(IRIS_ROW)
#: Targets: the service's lead over `mlflow models serve` (req/s, c=1 and c=8), its p99 at
#: c=1, and what the prediction log may cost (throughput, and p99 at c=1).
LEAD = 5.0
P99_MS = 3.0
LOG_DROP = 0.10
LOG_P99_MS = 1.0
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: str, *, connections: int, seconds: int, scratch: Path) -> dict[str, float]:
    """req/s, p50 and p99 (ms) from wrk with a POST body."""
    script = scratch / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = min(connections, 2)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    out = done.stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} error responses under load")

    def percentile(name: str) -> float:
        value, unit = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE).groups()
        return float(value) * UNITS[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "p50": percentile("50"), "p99": percentile("99")}


def plain_client(service: Service, path: str, body: str, seconds: float) -> dict[str, float]:
    """One keep-alive connection, one request at a time, no correction."""
    host, port = service.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


def floor(project: Path, env: dict[str, str]) -> dict[str, dict[str, float]]:
    """The champion's own predict on one row, in-process: the least any service can cost."""
    code = f"""
import time, json, warnings, numpy as np, pandas as pd, mlflow.sklearn
warnings.simplefilter("ignore")
model = mlflow.sklearn.load_model("models/champion")
rows = {{"array": np.array([{list(IRIS_ROW.values())}]), "frame": pd.DataFrame([{IRIS_ROW!r}])}}
out = {{}}
for name, row in rows.items():
    for _ in range(200): model.predict(row)
    n = 3000; started = time.perf_counter()
    for _ in range(n): model.predict(row)
    elapsed = time.perf_counter() - started
    out[name] = {{"rps": n / elapsed, "p50": elapsed / n * 1000}}
print(json.dumps(out))
"""
    out = run(["uv", "run", "--frozen", "python", "-c", code], project, env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8, help="of each load")
    parser.add_argument("--rounds", type=int, default=3, help="of every server; medians")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("benchmarks/service.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="paved-bench-service-") as tmp:
        scratch = Path(tmp)
        project, env = trained_repo(scratch)

        bento_body = json.dumps({"rows": [IRIS_ROW]})
        mlflow_body = json.dumps(
            {"dataframe_split": {"columns": FEATURES, "data": [list(IRIS_ROW.values())]}}
        )
        floors = floor(project, env)
        results["floor: model.predict, 1-row array"] = floors["array"]
        results["model.predict, 1-row pandas frame"] = floors["frame"]

        mlflow = ("uv", "run", "--frozen", "mlflow", "models", "serve", "-m", "models/champion")
        logged = {  # every request recorded, a file rolled every 5 s
            "PAVED_PREDICTION_LOG": str(scratch / "predictions"),
            "PAVED_PREDICTION_LOG_RATE": "1",
            "PAVED_PREDICTION_LOG_SECONDS": "5",
        }
        servers = [
            ("bentoml", {}, "/predict", bento_body),
            ("bentoml+log", {"extra_env": logged}, "/predict", bento_body),
            (
                "mlflow",
                {
                    "command": (*mlflow, "--env-manager", "local", "--workers", "1"),
                    "ready_path": "/ping",
                },
                "/invocations",
                mlflow_body,
            ),
        ]
        # Rounds of all three servers, one after another, and each figure the median over
        # the rounds: a 2-core machine's runs vary by 10 % or more from one to the next.
        rounds: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for name, how, path, body in servers:
                options = {key: value for key, value in how.items() if key != "extra_env"}
                server_env = {**env, **how.get("extra_env", {})}
                with serve(project, server_env, **options) as service:
                    for c in (1, 8):
                        rounds.setdefault(f"{name} c={c} (wrk)", []).append(
                            wrk(
                                service.url + path,
                                body,
                                connections=c,
                                seconds=args.seconds,
                                scratch=scratch,
                            )
                        )
                    rounds.setdefault(f"{name} c=1 (plain client)", []).append(
                        plain_client(service, path, body, args.seconds)
                    )
        for name, runs in rounds.items():
            results[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        log_files = sorted((scratch / "predictions").glob("*.parquet"))
        logged_rows = sum(ParquetFile(str(path)).count() for path in log_files)

    print()
    heads = f"{'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'req/s vs mlflow':>15}"
    print(f"| {'run':<42} | {heads} | {'p99 vs mlflow':>13} |")
    print(f"|{'-' * 44}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 17}|{'-' * 15}|")
    for name, figures in results.items():
        anchor_name = re.sub(r"^bentoml", "mlflow", name)
        anchor = results.get(anchor_name) if name.startswith("bentoml") else None
        ratio = f"{figures['rps'] / anchor['rps']:.2f}x" if anchor else ""
        p99_ratio = f"{figures['p99'] / anchor['p99']:.2f}x" if anchor else ""
        p99 = f"{figures['p99']:7.2f}" if "p99" in figures else " " * 7
        cells = f"{figures['rps']:8.1f} | {figures['p50']:7.2f} | {p99}"
        print(f"| {name:<42} | {cells} | {ratio:>15} | {p99_ratio:>13} |")
    print(f"\nprediction log (rate 1.0): {logged_rows} rows in {len(log_files)} Parquet files")
    floor_rps = results["floor: model.predict, 1-row array"]["rps"]
    share = results["bentoml c=1 (wrk)"]["rps"] / floor_rps
    print(f"share of the model.predict floor (1-row array), c=1: {share:.0%}")
    targets = []
    for c in (1, 8):
        lead = results[f"bentoml c={c} (wrk)"]["rps"] / results[f"mlflow c={c} (wrk)"]["rps"]
        measure = f"req/s vs mlflow models serve, c={c}"
        targets.append(Target(measure, f"{lead:.2f}x", f">= {LEAD}x", lead >= LEAD))
    p99 = results["bentoml c=1 (wrk)"]["p99"]
    targets.append(Target("p99 at c=1 (wrk)", f"{p99:.2f} ms", f"<= {P99_MS} ms", p99 <= P99_MS))
    for c in (1, 8):
        off, on = results[f"bentoml c={c} (wrk)"], results[f"bentoml+log c={c} (wrk)"]
        drop = 1 - on["rps"] / off["rps"]
        measure = f"prediction log on vs off, c={c}: throughput"
        targets.append(Target(measure, f"{-drop:+.1%}", f">= -{LOG_DROP:.0%}", drop <= LOG_DROP))
    extra = results["bentoml+log c=1 (wrk)"]["p99"] - results["bentoml c=1 (wrk)"]["p99"]
    measure = "prediction log on vs off, c=1: p99"
    targets.append(Target(measure, f"{extra:+.2f} ms", f"<= +{LOG_P99_MS} ms", extra <= LOG_P99_MS))
    return report(targets)


if __name__ == "__main__":
    sys.exit(main())
