"""Timing and reporting for the library-comparison benchmarks.

Every case is timed for each library in the same process run, on the same
input, after a warm-up call; the reported figure is the median of several
repetitions, so one slow call (page faults, a background process) does not
decide a ratio. Each library starts its timing from the same torch seed, so
random transforms (whose cost depends on what they draw: a zoom out leaves
more of the output outside the input) draw the same parameters in TorchIO
and torchvox, which share TorchIO's random stream.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

#: Torch seed every library's timing starts from.
SEED = 0

#: Libraries in the order their columns appear in the table.
LIBRARIES = ("torchio", "monai", "medrs", "torchvox")


@dataclass
class Case:
    """One operation measured across libraries.

    Attributes:
        name: What is measured, e.g. ``"ZNormalization"``.
        data: Which input, e.g. ``"MNI152"`` or ``"phantom 256^3"``.
        runners: Library name -> zero-argument callable doing the operation once.
            Libraries without the operation are simply absent.
        repeats: Timed repetitions after the warm-up.
        note: Free text shown in the table (parameters, caveats).
        items: How many items (e.g. patches) one call produces; above 1 the table
            shows the time per item and the note the items per second.
    """

    name: str
    data: str
    runners: dict[str, Callable[[], object]]
    repeats: int = 5
    note: str = ""
    items: int = 1


@dataclass
class Result:
    """Median times (ms) of one case, per library; errors keep their message."""

    case: Case
    median_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def ratio(self, library: str) -> float | None:
        """Return ``library``'s time divided by torchvox's time, if both ran."""
        ours = self.median_ms.get("torchvox")
        theirs = self.median_ms.get(library)
        if ours is None or theirs is None or ours <= 0:
            return None
        return theirs / ours


def time_call(function: Callable[[], object], repeats: int) -> float:
    """Return the median wall time of ``function`` in milliseconds, after one warm-up."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run_case(case: Case) -> Result:
    """Time every library of ``case``; a failing library is reported, not fatal."""
    result = Result(case)
    for library in LIBRARIES:
        runner = case.runners.get(library)
        if runner is None:
            continue
        try:
            torch.manual_seed(SEED)
            result.median_ms[library] = time_call(runner, case.repeats) / case.items
        except Exception as error:  # a benchmark reports failures instead of stopping
            result.errors[library] = f"{type(error).__name__}: {error}"
    return result


def _cell(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1f}{suffix}" if value >= 10 else f"{value:.2f}{suffix}"


def to_markdown(results: list[Result]) -> str:
    """Render results as a Markdown table (times in ms, ratios = theirs / torchvox)."""
    header = (
        "| op | data | TorchIO ms | MONAI ms | medrs ms | torchvox ms "
        "| vs TorchIO | vs MONAI | vs medrs | note |"
    )
    lines = [header, "|" + "---|" * 10]
    for result in results:
        times = [_cell(result.median_ms.get(library)) for library in LIBRARIES]
        ratios = [_cell(result.ratio(library), "x") for library in LIBRARIES[:3]]
        note = result.case.note
        if result.case.items > 1:
            rates = ", ".join(
                f"{library} {1000 / ms:.1f}/s" for library, ms in result.median_ms.items() if ms > 0
            )
            note = (note + "; " if note else "") + rates
        if result.errors:
            note = (note + "; " if note else "") + "; ".join(
                f"{library} failed ({message[:80]})" for library, message in result.errors.items()
            )
        lines.append(
            f"| {result.case.name} | {result.case.data} | "
            + " | ".join(times)
            + " | "
            + " | ".join(ratios)
            + f" | {note} |"
        )
    return "\n".join(lines)
