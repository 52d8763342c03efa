"""The model registry: register, champion/challenger promotion, and the champion artifact.

The alias `champion` marks the model version that serves. A newly trained version (the
challenger) takes the alias only when it beats the champion on the configured metric;
otherwise the champion stays and the decision says why. The gate is fair when it is given
the challenger's test set (`SameTestSet`): the champion is then scored on that same test
set, in the same run, rather than judged by the figure logged when it was trained on a test
set of its own; the decision is logged on the challenger's run with both scores and the
test set's hash. The aliases `staging` and
`production` say which version each deploy environment runs (`record_deployed`). The
champion is also copied to a plain folder (`models/champion`, tracked by DVC) so that
serving and image builds never need the tracking database.
"""

from __future__ import annotations

import math
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import mlflow.pyfunc
from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from paved_ml.champion import read_champion_file, write_champion_file
from paved_ml.config import ProjectConfig
from paved_ml.errors import RegistryError
from paved_ml.tracking import use_tracking

__all__ = [
    "CHAMPION_ALIAS",
    "ENVIRONMENT_ALIASES",
    "SETTLE_SECONDS",
    "Decision",
    "Reason",
    "SameTestSet",
    "champion",
    "decision_record",
    "export_champion",
    "load_registered_champion",
    "promote_if_better",
    "record_deployed",
    "register",
    "save_champion",
    "seed_champion",
]

CHAMPION_ALIAS = "champion"
#: The aliases that say which version each deploy environment serves.
ENVIRONMENT_ALIASES = ("staging", "production")

# How long a promotion waits after setting the alias before checking that it still holds:
# longer than any other promotion's re-read-then-set, so a racing writer is seen.
SETTLE_SECONDS = 1.0

# How many times a promotion redoes its comparison when other writers keep moving the alias.
_ATTEMPTS = 5

#: Where the champion's figure came from: the challenger's test set, or its own training run.
Basis = Literal["same_test_set", "training_run"]
#: The run tags and metric names a decision is logged under, on the challenger's run.
GATE_PREFIX = "paved.gate."

Reason = Literal[
    "no_champion",
    "better",
    "not_better",
    "champion_metric_missing",
    "champion_not_a_number",
    "challenger_not_a_number",
]


@dataclass(frozen=True, kw_only=True)
class SameTestSet:
    """The challenger's test set, for the fair gate: the champion is scored on it too.

    `score` takes a model URI (`models:/<name>/<version>`) and returns that model's value of
    the metric on this test set; `md5` is the test set's data hash (as DVC records it).
    """

    md5: str
    score: Callable[[str], float]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of a champion/challenger comparison; `reason` is the machine-readable why."""

    model_name: str
    version: str
    metric: str
    value: float | None
    promoted: bool
    champion_version: str | None
    champion_value: float | None
    reason: Reason
    #: Where `champion_value` came from (None without a champion).
    basis: Basis | None = None
    #: The figure the champion's own training run logged (what the unfair gate compared).
    champion_logged_value: float | None = None
    #: The data hash of the test set both were scored on (with `SameTestSet`).
    test_set_md5: str | None = None
    #: Why the champion could not be scored on the challenger's test set, if it could not.
    fallback: str | None = None

    @property
    def message(self) -> str:
        """One line for a person reading the pipeline's output."""
        line = self._verdict()
        if self.basis == "same_test_set":
            line += f" (both scored on the same test set, md5 {self.test_set_md5})"
        elif self.fallback:
            line += (
                f" (the champion's figure is from its own training run: it could not be "
                f"scored on this test set, md5 {self.test_set_md5}: {self.fallback})"
            )
        return line

    def _verdict(self) -> str:
        challenger = f"{self.model_name} v{self.version} ({self.metric}={_fmt(self.value)})"
        champ = f"v{self.champion_version} ({self.metric}={_fmt(self.champion_value)})"
        promoted = f"promoted {challenger} to '{CHAMPION_ALIAS}'"
        match self.reason:
            case "no_champion":
                line = f"{promoted}: there was no champion"
            case "better":
                line = f"{promoted}: it beats {champ}"
            case "not_better":
                line = f"kept champion {champ}: challenger {challenger} does not beat it"
            case "champion_not_a_number":
                line = (
                    f"{promoted}: champion v{self.champion_version}'s {self.metric} "
                    f"{_not_a_number(self.champion_value)} ({_fmt(self.champion_value)}), "
                    "so the finite challenger replaces it"
                )
            case "champion_metric_missing":
                line = (
                    f"kept champion v{self.champion_version}: its run has no metric "
                    f"{self.metric!r} to compare challenger {challenger} with; promote by "
                    f"hand with MlflowClient().set_registered_model_alias({self.model_name!r}, "
                    f"{CHAMPION_ALIAS!r}, {self.version!r}) if intended"
                )
            case "challenger_not_a_number":
                why = f"{self.metric} {_not_a_number(self.value)} ({_fmt(self.value)})"
                line = (
                    f"did not promote {self.model_name} v{self.version}: its {why}"
                    if self.champion_version is None
                    else f"kept champion {champ}: challenger {self.model_name} "
                    f"v{self.version}'s {why}"
                )
        return line


def register(config: ProjectConfig, model_uri: str, *, tags: dict[str, str] | None = None) -> str:
    """Register `model_uri` under the project's model name; return the new version."""
    use_tracking(config)
    version = mlflow.register_model(model_uri, config.model_name, tags=tags)
    return str(version.version)


def champion(config: ProjectConfig) -> Any | None:
    """The model version holding the champion alias, or None when there is none."""
    use_tracking(config)
    return _by_alias(MlflowClient(), config.model_name)


def promote_if_better(
    config: ProjectConfig,
    version: str,
    *,
    metric: str,
    value: float | None,
    greater_is_better: bool = True,
    same_test_set: SameTestSet | None = None,
    settle: float = SETTLE_SECONDS,
) -> Decision:
    """Give `version` the champion alias only if its `value` of `metric` beats the champion's.

    With `same_test_set` the gate is fair: the champion is loaded from the registry and
    scored on the challenger's test set, in this run, and that score is what the challenger
    must beat. Without it, or when the champion cannot be loaded or scored there (the
    decision says why), the champion's figure is the one its own training run logged. A tie
    keeps the champion; a challenger whose value is not a finite number is never promoted; a
    champion without a figure is kept (the message says how to promote by hand), one whose
    figure is not finite is replaced. The decision is logged on the challenger's run (tags
    and metrics under `paved.gate.`).

    The registry has no compare-and-set, so concurrent promotions of one model are settled
    optimistically: the alias is re-read just before it is set and again `settle` seconds
    after; whenever it moved, the comparison is redone against the new holder. The alias
    then ends on the best of the racing challengers and each Decision agrees with it (a
    challenger may be promoted and then beaten by a racer, which its Decision names as the
    champion it beat). This holds while every writer sets the alias within `settle` seconds
    of its re-read; for up to `settle` seconds the alias may point at a worse racer.
    """
    use_tracking(config)
    client = MlflowClient()
    version = str(version)
    holders = _Holders(client, config.model_name, metric, same_test_set)
    holder = holders.current()
    if holder is not None and holder.version == version:
        raise RegistryError(f"{config.model_name} v{version} is already the champion")
    judge = _Judge(config.model_name, version, metric, value, greater_is_better, same_test_set)
    for _ in range(_ATTEMPTS):
        decision = judge(holder)
        if not decision.promoted:
            return _logged(client, decision)
        # Right before writing: if another promotion moved the alias, compare again.
        moved = _by_alias(client, config.model_name)
        if _version_of(holder) != (None if moved is None else str(moved.version)):
            holder = holders.current()
            if _version_of(holder) == version:
                return _logged(client, decision)
            continue
        client.set_registered_model_alias(config.model_name, CHAMPION_ALIAS, version)
        # Give a racing writer time to land, then check who holds the alias now.
        time.sleep(settle)
        holder = holders.current()
        if _version_of(holder) == version:
            return _logged(client, decision)
    decision = judge(holder)
    if not decision.promoted:
        return _logged(client, decision)
    raise RegistryError(
        f"the '{CHAMPION_ALIAS}' alias of {config.model_name} kept moving while v{version} "
        f"was being promoted ({_ATTEMPTS} attempts): run the promotion again"
    )


def save_champion(model_dir: Path, dest: Path, decision: Decision) -> Path:
    """Copy a promoted MLflow model folder to `dest`, with a champion.json describing it."""
    if not decision.promoted:
        raise RegistryError(f"{decision.model_name} v{decision.version} was not promoted")
    with _replacing(dest) as new:
        shutil.copytree(model_dir, new, dirs_exist_ok=True)
        metrics = {decision.metric: decision.value} if decision.value is not None else {}
        write_champion_file(new, decision.model_name, decision.version, metrics)
    return dest


def export_champion(config: ProjectConfig, dest: Path) -> Path:
    """Download the registry's champion to `dest` (for a repo whose champion folder is gone)."""
    current = champion(config)
    if current is None:
        raise RegistryError(f"{config.model_name} has no '{CHAMPION_ALIAS}' in the registry")
    with _replacing(dest) as new:
        # The version the alias named a moment ago, not the alias: it may move meanwhile.
        uri = f"models:/{config.model_name}/{current.version}"
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(new))
        if not (new / "MLmodel").is_file():
            raise RegistryError(
                f"{config.model_name} v{current.version} downloaded without an MLmodel file: "
                "its artifacts are incomplete"
            )
        logged = MlflowClient().get_run(current.run_id).data.metrics
        # The model's own metrics: not the gate's figures logged beside them.
        metrics = {k: v for k, v in logged.items() if not k.startswith(GATE_PREFIX)}
        write_champion_file(new, config.model_name, str(current.version), metrics)
    return dest


def load_registered_champion(config: ProjectConfig) -> Any:
    """Load the registry's champion (as a pyfunc model) by its alias.

    The champion folder (`paved_ml.champion.load_champion`) is what serves; this is the
    version the registry's alias names, for a repo that checks the two agree.
    """
    if champion(config) is None:
        raise RegistryError(f"{config.model_name} has no '{CHAMPION_ALIAS}' in the registry")
    return mlflow.pyfunc.load_model(f"models:/{config.model_name}@{CHAMPION_ALIAS}")


def record_deployed(config: ProjectConfig, environment: str, version: str) -> str | None:
    """Give `version` the alias `environment` (staging, production); return the previous holder.

    The registry then says which version each environment serves. Deploys set it from the
    deployed image's labels once its pull request is merged; it never touches `champion`,
    which only the champion gate moves. None when no version held the alias.
    """
    if environment not in ENVIRONMENT_ALIASES:
        raise RegistryError(
            f"{environment!r} is not an environment: {', '.join(ENVIRONMENT_ALIASES)}"
        )
    use_tracking(config)
    client = MlflowClient()
    try:
        client.get_model_version(config.model_name, version)
    except MlflowException as exc:
        raise RegistryError(
            f"{config.model_name} v{version} is not in the registry: {exc.message}"
        ) from None
    before = _by_alias(client, config.model_name, environment)
    client.set_registered_model_alias(config.model_name, environment, version)
    return None if before is None else str(before.version)


def seed_champion(config: ProjectConfig, model_dir: Path) -> str:
    """Register the champion folder as the champion of a registry that has none; its version.

    For a registry made for one run: retraining in CI judges its challenger against the
    champion the repo serves (its folder, from the DVC remote) without the team's tracking
    server. The folder's champion.json metrics are logged on the version's run, for a
    champion that cannot be scored on the new test set.
    """
    if not (model_dir / "MLmodel").is_file():
        raise RegistryError(f"{model_dir} holds no MLflow model: run `dvc pull` first")
    use_tracking(config)
    held = champion(config)
    if held is not None:
        raise RegistryError(
            f"{config.model_name} has a champion already (v{held.version}): seed only a new "
            "registry"
        )
    record = read_champion_file(model_dir)
    metrics = {
        str(name): float(value)
        for name, value in (record.get("metrics") or {}).items()
        if isinstance(value, int | float) and math.isfinite(value)
    }
    with mlflow.start_run(run_name="champion (seeded)") as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        if metrics:
            mlflow.log_metrics(metrics)
        mlflow.set_tag("paved.seeded_from", str(record.get("version") or ""))
    version = register(config, f"runs:/{run.info.run_id}/model")
    MlflowClient().set_registered_model_alias(config.model_name, CHAMPION_ALIAS, version)
    return version


def decision_record(decision: Decision) -> dict[str, Any]:
    """The decision as JSON-ready data, for a stage's output file (NaN and inf become null)."""
    record = asdict(decision)
    for key in ("value", "champion_value", "champion_logged_value"):
        record[key] = _finite(record[key])
    return {**record, "message": decision.message}


@dataclass(frozen=True)
class _Holder:
    """The alias holder: its version and figure, where the figure came from, and why."""

    version: str
    value: float | None
    logged: float | None
    basis: Basis
    fallback: str | None = None


def _by_alias(client: MlflowClient, model_name: str, alias: str = CHAMPION_ALIAS) -> Any | None:
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            return None
        raise


class _Holders:
    """Reads the alias holder; scores each holder on the same test set once per promotion."""

    def __init__(
        self, client: MlflowClient, model_name: str, metric: str, same: SameTestSet | None
    ) -> None:
        self.client, self.model_name, self.metric, self.same = client, model_name, metric, same
        self._scored: dict[str, float | str] = {}

    def current(self) -> _Holder | None:
        held = _by_alias(self.client, self.model_name)
        if held is None:
            return None
        version = str(held.version)
        metrics = self.client.get_run(held.run_id).data.metrics if held.run_id else {}
        logged = metrics.get(self.metric)
        logged = None if logged is None else float(logged)
        if self.same is None:
            return _Holder(version, logged, logged, "training_run")
        if version not in self._scored:
            self._scored[version] = self._score(version)
        scored = self._scored[version]
        if isinstance(scored, str):
            return _Holder(version, logged, logged, "training_run", fallback=scored)
        return _Holder(version, scored, logged, "same_test_set")

    def _score(self, version: str) -> float | str:
        """The holder's figure on the test set, or why there is none (the fallback's note)."""
        assert self.same is not None
        try:
            return float(self.same.score(f"models:/{self.model_name}/{version}"))
        except Exception as exc:  # any model that cannot be loaded or scored: say why
            detail = " ".join(str(exc).split())[:300]
            return f"{type(exc).__name__}: {detail}"


def _version_of(holder: _Holder | None) -> str | None:
    return None if holder is None else holder.version


@dataclass(frozen=True)
class _Judge:
    """Compares the challenger with an alias holder; nothing is written."""

    model_name: str
    version: str
    metric: str
    value: float | None
    greater_is_better: bool
    same: SameTestSet | None

    def __call__(self, holder: _Holder | None) -> Decision:
        champion_value = None if holder is None else holder.value
        reason: Reason
        if _finite(self.value) is None:
            reason = "challenger_not_a_number"
        elif holder is None:
            reason = "no_champion"
        elif champion_value is None:
            reason = "champion_metric_missing"
        elif _finite(champion_value) is None:
            reason = "champion_not_a_number"
        else:
            assert self.value is not None
            beats = (
                self.value > champion_value
                if self.greater_is_better
                else self.value < champion_value
            )
            reason = "better" if beats else "not_better"
        return Decision(
            model_name=self.model_name,
            version=self.version,
            metric=self.metric,
            value=self.value,
            promoted=reason in {"no_champion", "better", "champion_not_a_number"},
            champion_version=_version_of(holder),
            champion_value=champion_value,
            reason=reason,
            basis=None if holder is None else holder.basis,
            champion_logged_value=None if holder is None else holder.logged,
            test_set_md5=None if self.same is None else self.same.md5,
            fallback=None if holder is None else holder.fallback,
        )


def _logged(client: MlflowClient, decision: Decision) -> Decision:
    """Log the decision on the challenger's run: tags, and each finite figure as a metric.

    The version itself is tagged with the metric and its figure too: a fleet view reads
    every version's figure from one search of versions, not a search of runs.
    """
    client.set_model_version_tag(
        decision.model_name, decision.version, f"{GATE_PREFIX}metric", decision.metric
    )
    if decision.value is not None and math.isfinite(decision.value):
        client.set_model_version_tag(
            decision.model_name, decision.version, f"{GATE_PREFIX}value", repr(decision.value)
        )
    run_id = client.get_model_version(decision.model_name, decision.version).run_id
    if not run_id:
        return decision
    tags = {
        "reason": decision.reason,
        "promoted": str(decision.promoted).lower(),
        "metric": decision.metric,
        "champion_version": decision.champion_version or "",
        "basis": decision.basis or "",
        "test_set_md5": decision.test_set_md5 or "",
        "fallback": decision.fallback or "",
        "message": decision.message[:4000],
    }
    figures = {
        "challenger": decision.value,
        "champion": decision.champion_value,
        "champion_logged": decision.champion_logged_value,
    }
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric(f"{GATE_PREFIX}{key}.{decision.metric}", float(figure), now, 0)
            for key, figure in figures.items()
            if figure is not None and math.isfinite(figure)
        ],
        tags=[RunTag(f"{GATE_PREFIX}{key}", text) for key, text in tags.items()],
    )
    return decision


@contextmanager
def _replacing(dest: Path) -> Iterator[Path]:
    """Yield an empty sibling folder to fill, then swap it in for `dest` by renames.

    The old folder stays whole until the new one is complete; if filling fails, the
    sibling is removed and `dest` is left as it was.
    """
    token = secrets.token_hex(4)
    new = dest.parent / f".{dest.name}.tmp-{token}"
    old = dest.parent / f".{dest.name}.old-{token}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    new.mkdir()
    try:
        yield new
        had_old = dest.exists()
        if had_old:
            dest.rename(old)
        try:
            new.rename(dest)
        except BaseException:
            if had_old:
                old.rename(dest)
            raise
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _not_a_number(value: float | None) -> str:
    return "is not a number" if value is None or math.isnan(value) else "is not finite"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
