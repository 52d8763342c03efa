"""Standing targets of the benchmarks: each printed with its figure, MISSED when missed.

from benchmarks.targets import Target, report
return report([Target("req/s vs the anchor", f"{lead:.2f}x", ">= 5x", lead >= 5)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One standing target: what is measured, the figure, the target, whether it is met."""

    measure: str
    figure: str
    target: str
    met: bool


def report(targets: Sequence[Target]) -> int:
    """Print every target with its figure; return 1 when any is missed, else 0."""
    print()
    for t in targets:
        print(f"{'met   ' if t.met else 'MISSED'} {t.measure}: {t.figure} (target {t.target})")
    missed = sum(not t.met for t in targets)
    print("targets met" if not missed else f"targets MISSED: {missed} of {len(targets)}")
    return 1 if missed else 0
