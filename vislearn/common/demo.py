"""What a system's quick demo hands back to `vislearn demo` (the one table of `make demo`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Measure:
    """One row of the demo table: what was measured, its value, and what to compare it with (the paper's
    figure where the demo reproduces one, otherwise chance or a baseline measured in the same run)."""

    measured: str
    value: str
    reference: str


@dataclass
class DemoOutcome:
    measures: list[Measure]
    report: Path  # the system's report page (HTML), linked from runs/demo/index.html
    notes: list[str] = field(default_factory=list)
