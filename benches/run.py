"""Run every benchmark case against TorchIO, MONAI and medrs and write a Markdown report.

Usage:
    python benches/run.py [--output benches/results.md] [--filter TEXT] [--data mni152,phantom]
        [--modules foundation,spatial,...]

Every library runs in this one process, on the same inputs, with torch limited to
the same number of threads as torchvox, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benches import data  # noqa: E402
from benches.harness import Result, run_case, to_markdown  # noqa: E402

#: Case modules, in report order; each later issue adds its own.
CASE_MODULES = ["foundation", "spatial", "intensity", "labels", "patches"]


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    for name in ("torchvox", "torchio", "monai", "medrs", "SimpleITK", "nibabel"):
        try:
            module = importlib.import_module(name)
            parts.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            parts.append(f"{name} missing")
    return ", ".join(parts)


def _processor() -> str:
    """The CPU's model name where the OS tells it (ratios depend on it), else its architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {platform.machine()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _summary(results: list[Result], targets: dict[str, dict[str, float]]) -> str:
    """Render each case's targets (minimum ratios from the issues) as met / not met."""
    lines = [
        "",
        "## Summary against targets",
        "",
        "Target = minimum ratio (other library's time / torchvox's) set by the issues.",
        "",
        "| op | data | against | target | measured | status |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for library, minimum in targets.get(result.case.name, {}).items():
            ratio = result.ratio(library)
            if ratio is None:
                measured, status = "-", "not measured"
            else:
                measured = f"{ratio:.2f}x"
                status = "met" if ratio >= minimum else "**not met**"
            lines.append(
                f"| {result.case.name} | {result.case.data} | {library} | >= {minimum:g}x "
                f"| {measured} | {status} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benches/results.md"))
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--data", default="mni152,phantom", help="comma-separated inputs")
    parser.add_argument(
        "--modules", default=",".join(CASE_MODULES), help="comma-separated case modules"
    )
    arguments = parser.parse_args()

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    import torchvox

    torchvox.set_num_threads(threads)

    volumes = []
    for name in arguments.data.split(","):
        volumes.append(data.mni152() if name == "mni152" else data.phantom(256))

    results: list[Result] = []
    targets: dict[str, dict[str, float]] = {}
    for module_name in arguments.modules.split(","):
        try:
            module = importlib.import_module(f"benches.cases.{module_name}")
        except ModuleNotFoundError:
            continue
        # Optional per-module targets: case name -> {library: minimum ratio}.
        targets.update(getattr(module, "TARGETS", {}))
        for volume in volumes:
            for case in module.cases(volume):
                if arguments.filter.lower() not in case.name.lower():
                    continue
                result = run_case(case)
                results.append(result)
                print(to_markdown([result]).splitlines()[-1], flush=True)

    header = [
        "# torchvox benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {threads} cores "
        f"({_processor()}); {_versions()}.",
        "",
        "Median of several calls after a warm-up, all libraries in the same process on the same",
        "input, torch and torchvox on the same number of threads, each library from the same torch",
        "seed (random transforms draw the same parameters). Ratios are the other library's",
        "time divided by torchvox's: above 1 means torchvox is faster. Regenerate: `make bench`.",
        "",
    ]
    report = "\n".join(header) + to_markdown(results) + "\n" + _summary(results, targets)
    with_mni152 = any(not volume.name.startswith("phantom") for volume in volumes)
    if (
        with_mni152
        and "patches" in arguments.modules
        and arguments.filter.lower() in "queue memory"
    ):
        # A fresh process: see benches/memory.py for why.
        section = subprocess.run(
            [sys.executable, "-m", "benches.memory"],
            cwd=Path(__file__).resolve().parent.parent,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print(section, flush=True)
        report += "\n" + section
    arguments.output.write_text(report)
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
