"""Apply a transform to every image of a folder (or every subject of a CSV) in parallel.

:func:`preprocess` is the engine behind ``torchvox preprocess``. Work is split into one
task per subject (one file of a folder, or one row of a CSV); each task reads its
images, applies the transform with a seed derived from the subject's relative path, and
writes every output atomically (a temporary file in the destination folder, then
``os.replace``). Tasks are therefore idempotent: a task that runs again, because a run
was interrupted or a Dask worker died, finds its finished outputs and skips them, and
anything it does write is identical to what the first attempt would have written. An
interrupted run never leaves a truncated output behind, only temporary files, which the
next run removes.

The same task function runs in local worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`) or on a Dask distributed cluster
(``client=``); only the executor differs.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
import shutil
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .types import TypePath

__all__ = [
    "IMAGE_SUFFIXES",
    "PreprocessReport",
    "PreprocessTask",
    "TaskResult",
    "build_tasks",
    "load_transform_config",
    "preprocess",
    "run_task",
]

#: File suffixes read as images when a folder is given (checked case-insensitively).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".mnc", ".hdr")
#: Marker in the names of temporary files; they are never taken as inputs or outputs.
TEMPORARY_MARKER = ".torchvox-tmp-"
#: Column of a subjects CSV holding the subject identifier (not an image).
SUBJECT_COLUMN = "subject"


@dataclass(frozen=True)
class PreprocessTask:
    """One unit of work: the images of one subject, and where their outputs go.

    Attributes:
        key: Identifier of the subject (its relative path, or its CSV identifier);
            the random seed of the transform is derived from it.
        images: ``(name, input path, output path, image class name)`` per image.
        seed: Seed of torch's RNG while transforming this subject.
        overwrite: Recompute outputs that already exist.
    """

    key: str
    images: tuple[tuple[str, str, str, str], ...]
    seed: int
    overwrite: bool = False


@dataclass
class TaskResult:
    """What one task did.

    Attributes:
        key: The task's subject key.
        status: ``'done'`` (outputs written), ``'skipped'`` (all outputs existed) or
            ``'failed'``.
        inputs: Input paths.
        written: Outputs this attempt wrote.
        error: ``'ExceptionType: message'`` for failures.
        details: The traceback of a failure.
        warnings: Warnings raised while processing (e.g. a reader fallback), kept
            here rather than printed by many workers at once.
    """

    key: str
    status: str
    inputs: list[str]
    written: list[str] = field(default_factory=list)
    error: str = ""
    details: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class PreprocessReport:
    """Summary of a :func:`preprocess` run.

    Attributes:
        results: One :class:`TaskResult` per subject, in input order.
    """

    results: list[TaskResult]

    @property
    def done(self) -> list[TaskResult]:
        """Subjects whose outputs were written by this run."""
        return [result for result in self.results if result.status == "done"]

    @property
    def skipped(self) -> list[TaskResult]:
        """Subjects whose outputs all existed already."""
        return [result for result in self.results if result.status == "skipped"]

    @property
    def failed(self) -> list[TaskResult]:
        """Subjects that could not be processed, with the reason in ``error``."""
        return [result for result in self.results if result.status == "failed"]

    @property
    def ok(self) -> bool:
        """Whether no subject failed."""
        return not self.failed

    def summary(self) -> str:
        """A few human-readable lines: counts, then one line per failure."""
        lines = [
            f"{len(self.done)} processed, {len(self.skipped)} skipped (already done),"
            f" {len(self.failed)} failed"
        ]
        for result in self.failed:
            lines.append(f"FAILED {', '.join(result.inputs)}: {result.error}")
        return "\n".join(lines)

    def to_json(self, path: TypePath) -> None:
        """Write every result (with failure tracebacks) to a JSON file."""
        payload = {
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "results": [asdict(result) for result in self.results],
        }
        _atomic_write_text(Path(path), json.dumps(payload, indent=2))


# ----------------------------------------------------------------------------- inputs


def _has_image_suffix(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(IMAGE_SUFFIXES) and TEMPORARY_MARKER not in str(path)


def _split_suffix(path: Path) -> tuple[str, str]:
    """``('dir/t1', '.nii.gz')`` for ``dir/t1.nii.gz``."""
    name = path.name
    lowered = name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return str(path.parent / name[: -len(suffix)]), name[-len(suffix) :]
    return str(path.parent / path.stem), path.suffix


def _output_path(relative: Path, output_dir: Path, suffix: str | None) -> Path:
    if suffix is None:
        return output_dir / relative
    stem, _ = _split_suffix(relative)
    return output_dir / f"{stem}{suffix}"


def _subject_seed(seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _read_subjects_csv(path: Path) -> list[tuple[str, dict[str, Path]]]:
    """Rows of a subjects CSV as ``(subject id, {image name: path})``.

    Every column is an image column (paths relative to the CSV's folder, or absolute)
    except ``subject``, the optional identifier; empty cells are skipped.
    """
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ValueError(f'The CSV file "{path}" has no header row')
        rows = []
        for index, row in enumerate(reader):
            images = {
                name: (path.parent / value.strip())
                for name, value in row.items()
                if name != SUBJECT_COLUMN and name is not None and value and value.strip()
            }
            if not images:
                continue
            identifier = (row.get(SUBJECT_COLUMN) or "").strip() or f"row{index:06d}"
            rows.append((identifier, images))
    return rows


def _image_class_name(
    path: Path, column: str | None, image_class: str, label_pattern: str | None
) -> str:
    if label_pattern is not None and (
        path.match(label_pattern) or (column is not None and Path(column).match(label_pattern))
    ):
        return "LabelMap"
    return image_class


def build_tasks(
    inputs: TypePath | Sequence[TypePath],
    output_dir: TypePath,
    *,
    input_root: TypePath | None = None,
    image_class: str = "ScalarImage",
    label_pattern: str | None = None,
    suffix: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> list[PreprocessTask]:
    """List the tasks of a run (see :func:`preprocess` for the arguments).

    Raises:
        FileNotFoundError: If an input folder, CSV or file does not exist.
        ValueError: If nothing is found to process or two inputs map to one output.
    """
    output_root = Path(output_dir).expanduser().resolve()
    entries: list[tuple[str, list[tuple[str, Path, str | None]]]] = []
    root: Path | None = Path(input_root).expanduser().resolve() if input_root else None
    if isinstance(inputs, str | Path):
        source = Path(inputs).expanduser().resolve()
        if source.is_dir():
            if source == output_root:
                raise ValueError(f'The outputs would overwrite the inputs in "{source}"')
            root = root or source
            files = sorted(
                path
                for path in source.rglob("*")
                if path.is_file()
                and _has_image_suffix(path)
                # An output folder inside the input folder is not an input.
                and not path.is_relative_to(output_root)
            )
            entries = [(str(path), [("image", path, None)]) for path in files]
        elif source.is_file() and source.suffix.lower() in (".csv", ".tsv"):
            for identifier, row_images in _read_subjects_csv(source):
                resolved: list[tuple[str, Path, str | None]] = [
                    (name, p.resolve(), name) for name, p in row_images.items()
                ]
                entries.append((identifier, resolved))
        elif source.is_file():
            entries = [(str(source), [("image", source, None)])]
        else:
            raise FileNotFoundError(f'Input folder or CSV file not found: "{source}"')
    else:
        paths = [Path(p).expanduser().resolve() for p in inputs]
        entries = [(str(path), [("image", path, None)]) for path in paths]
    if not entries:
        raise ValueError(f'No images found in "{inputs}" (suffixes: {", ".join(IMAGE_SUFFIXES)})')
    if root is None:
        parents = [str(p.parent) for _, images in entries for _, p, _ in images]
        root = Path(os.path.commonpath(parents))
    tasks = []
    seen: dict[Path, str] = {}
    for identifier, images in entries:
        specs = []
        for name, path, column in images:
            try:
                relative = path.relative_to(root)
            except ValueError as error:
                raise ValueError(f'Input "{path}" is not inside the input root "{root}"') from error
            output = _output_path(relative, output_root, suffix)
            if output == path:
                raise ValueError(
                    f'The output of "{path}" would overwrite it: use another output_dir'
                )
            if output in seen and seen[output] != str(path):
                raise ValueError(f'"{path}" and "{seen[output]}" would both be written to {output}')
            seen[output] = str(path)
            class_name = _image_class_name(path, column, image_class, label_pattern)
            specs.append((name, str(path), str(output), class_name))
        key = (
            identifier
            if not Path(identifier).is_absolute()
            else str(Path(identifier).relative_to(root))
        )
        tasks.append(
            PreprocessTask(
                key=key, images=tuple(specs), seed=_subject_seed(seed, key), overwrite=overwrite
            )
        )
    return tasks


# ------------------------------------------------------------------------- transforms


def _resolve_target(target: str) -> Any:
    """Import ``'torchvox.transforms...Class'``; TorchIO paths map to torchvox by class name."""
    module_name, _, attribute = target.rpartition(".")
    if module_name.startswith("torchvox"):
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            pass
    from . import transforms

    found = getattr(transforms, attribute, None)
    if found is None:
        from .data.subject import _find_transform_class

        found = _find_transform_class(attribute)
    return found


def _instantiate(config: Any) -> Any:
    if isinstance(config, Mapping):
        values = {key: _instantiate(value) for key, value in config.items()}
        if "_target_" not in values:
            return values
        target = _resolve_target(str(values.pop("_target_")))
        return target(**values)
    if isinstance(config, list):
        return [_instantiate(item) for item in config]
    return config


def load_transform_config(path: TypePath) -> Any:
    """Build a transform from a YAML (or JSON) file holding a Hydra-style config.

    The format is what :meth:`Transform.to_hydra_config` returns: mappings with a
    ``_target_`` import path and the constructor arguments, children of a Compose under
    ``transforms``. ``torchio.transforms...`` targets map to the torchvox class of the
    same name.

    Raises:
        ImportError: If PyYAML is missing (for ``.yaml``/``.yml`` files).
        ValueError: If the file does not describe a transform.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        config = json.loads(text)
    else:
        try:
            import yaml
        except ImportError as error:
            raise ImportError("Reading YAML configs needs PyYAML: pip install pyyaml") from error
        config = yaml.safe_load(text)
    if not isinstance(config, Mapping) or "_target_" not in config:
        raise ValueError(f'"{path}" does not hold a transform config with a "_target_" key')
    transform = _instantiate(config)
    if not callable(transform):
        raise ValueError(f'"{path}" describes {type(transform).__name__}, not a transform')
    return transform


def _parse_transform(transform: Any, kwargs: Mapping[str, Any] | None) -> Callable[..., Any]:
    if isinstance(transform, Path) or (
        isinstance(transform, str) and transform.lower().endswith((".yaml", ".yml", ".json"))
    ):
        if kwargs:
            raise ValueError("transform_kwargs cannot be combined with a config file")
        return load_transform_config(transform)
    if isinstance(transform, str):
        from .cli.apply_transform import get_transform_class

        return get_transform_class(transform)(**(kwargs or {}))
    if kwargs:
        raise ValueError("transform_kwargs are only used with a transform class name")
    if not callable(transform):
        raise TypeError(
            f"transform must be callable, a class name or a config file, got {transform!r}"
        )
    return transform


# ------------------------------------------------------------------------------ tasks


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{TEMPORARY_MARKER}{uuid.uuid4().hex}")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _atomic_save(image: Any, path: Path) -> None:
    """Write ``image`` so that ``path`` is either absent or complete.

    The image is written, under its final name, into a unique temporary folder next to
    ``path``; its files are then renamed into place (``os.replace``, atomic within a
    file system), the file named ``path`` last, so that formats made of a header and a
    data file (``.hdr``/``.img``, ``.mhd``/``.raw``) also appear complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f"{TEMPORARY_MARKER}{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        image.save(staging / path.name)
        produced = sorted(staging.iterdir(), key=lambda item: item.name == path.name)
        for item in produced:
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_task(task: PreprocessTask, transform: Callable[..., Any]) -> TaskResult:
    """Process one subject; never raises for bad inputs (the result says why it failed).

    Outputs that exist are left alone (unless ``task.overwrite``); the transform runs
    under ``torch.random.fork_rng`` seeded with ``task.seed``, so re-running a task
    produces identical outputs and leaves the caller's RNG untouched.
    """
    inputs = [spec[1] for spec in task.images]
    missing = [
        (name, source, output, class_name)
        for name, source, output, class_name in task.images
        if task.overwrite or not Path(output).is_file()
    ]
    if not missing:
        return TaskResult(task.key, "skipped", inputs)
    written: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _transform_and_write(task, transform, missing, written)
    result.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    return result


def _transform_and_write(
    task: PreprocessTask,
    transform: Callable[..., Any],
    missing: list[tuple[str, str, str, str]],
    written: list[str],
) -> TaskResult:
    import torch

    from . import data

    inputs = [spec[1] for spec in task.images]
    try:
        images = {}
        for name, source, _, class_name in task.images:
            image_class = getattr(data, class_name, None)
            if image_class is None:
                raise ValueError(f'Image class "{class_name}" not found in torchvox.data')
            images[name] = image_class(source)
        subject = data.Subject(images)
        subject.load()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task.seed)
            transformed = transform(subject)
        for name, _, output, _ in missing:
            _atomic_save(transformed[name], Path(output))
            written.append(output)
    except Exception as error:  # one bad input must not stop the run
        return TaskResult(
            task.key,
            "failed",
            inputs,
            written=written,
            error=f"{type(error).__name__}: {error}",
            details=traceback.format_exc(),
        )
    return TaskResult(task.key, "done", inputs, written=written)


def _run_tasks(tasks: Sequence[PreprocessTask], transform: Callable[..., Any]) -> list[TaskResult]:
    """Run a batch of tasks in one call (one pickled transform per batch)."""
    return [run_task(task, transform) for task in tasks]


def _init_local_worker() -> None:
    # The pool already runs one process per core: keep each worker single-threaded.
    import torch

    from ._backend import set_num_threads

    torch.set_num_threads(1)
    set_num_threads(1)


def _clean_temporaries(tasks: Iterable[PreprocessTask]) -> None:
    """Remove the staging folders that killed attempts left next to the outputs."""
    folders = {Path(output).parent for task in tasks for _, _, output, _ in task.images}
    for folder in folders:
        if folder.is_dir():
            for leftover in folder.glob(f"{TEMPORARY_MARKER}*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)


def _chunks(tasks: Sequence[PreprocessTask], size: int) -> Iterator[list[PreprocessTask]]:
    for start in range(0, len(tasks), size):
        yield list(tasks[start : start + size])


def preprocess(
    inputs: TypePath | Sequence[TypePath],
    transform: Any,
    output_dir: TypePath,
    client: Any = None,
    *,
    transform_kwargs: Mapping[str, Any] | None = None,
    input_root: TypePath | None = None,
    image_class: str = "ScalarImage",
    label_pattern: str | None = None,
    suffix: str | None = None,
    num_workers: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    report_path: TypePath | None = None,
    tasks_per_batch: int = 1,
) -> PreprocessReport:
    """Apply a transform to every image of a folder or every subject of a CSV, in parallel.

    Outputs mirror the input tree under ``output_dir``. A run can be interrupted and
    started again: finished outputs are skipped, each output is written atomically, and
    each subject is transformed with a seed derived from ``seed`` and its relative path,
    so results do not depend on the order, the number of workers or where they ran.
    Do not run two runs into the same ``output_dir`` at once: each removes the
    temporary files it finds there, which the other may still be writing.

    Args:
        inputs: A folder (every image file in it, recursively: one subject per file),
            a CSV file with one subject per row (a header row; an optional ``subject``
            column; every other column holds an image path, relative to the CSV's
            folder or absolute; images of one row are transformed together), or a
            sequence of image files.
        transform: A transform (any picklable callable taking and returning a
            :class:`Subject`), the name of a transform class in
            :mod:`torchvox.transforms` (arguments in ``transform_kwargs``), or the path
            of a YAML/JSON config such as :meth:`Transform.to_hydra_config` produces.
        output_dir: Root of the output tree.
        client: A ``dask.distributed.Client``; if given, tasks run on its cluster,
            whose workers must be able to import torchvox and read/write the paths.
        transform_kwargs: Arguments of the transform class named by ``transform``.
        input_root: Folder the output tree mirrors; the input folder, or the deepest
            folder holding every input, if ``None``.
        image_class: ``'ScalarImage'`` or ``'LabelMap'``: how inputs are read.
        label_pattern: Glob (e.g. ``'*seg*'``) of file names, or CSV column names,
            read as :class:`LabelMap` instead.
        suffix: Output format suffix (e.g. ``'.nii.gz'``); the input's if ``None``.
        num_workers: Local worker processes (ignored with ``client``); the number of
            CPUs if ``None``; 0 runs every task in this process.
        seed: Base seed of the per-subject seeds.
        overwrite: Recompute outputs that already exist.
        progress: Show a progress bar (tqdm).
        report_path: Also write the report (with tracebacks) as JSON there.
        tasks_per_batch: Subjects sent to a worker at a time (larger batches amortise
            sending the transform for many small images).

    Returns:
        A :class:`PreprocessReport`; subjects that failed (e.g. corrupt files) are
        listed in ``report.failed`` with the reason, instead of stopping the run.

    Raises:
        FileNotFoundError: If ``inputs`` does not exist.
        ValueError: For invalid arguments, unknown transform names or no inputs.
    """
    if image_class not in ("ScalarImage", "LabelMap"):
        raise ValueError(f'image_class must be "ScalarImage" or "LabelMap", got {image_class!r}')
    if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
        raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    if not isinstance(tasks_per_batch, int) or tasks_per_batch < 1:
        raise ValueError(f"tasks_per_batch must be a positive integer, got {tasks_per_batch!r}")
    if suffix is not None and not suffix.startswith("."):
        raise ValueError(f'suffix must start with ".", got {suffix!r}')
    callable_transform = _parse_transform(transform, transform_kwargs)
    tasks = build_tasks(
        inputs,
        output_dir,
        input_root=input_root,
        image_class=image_class,
        label_pattern=label_pattern,
        suffix=suffix,
        seed=seed,
        overwrite=overwrite,
    )
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    _clean_temporaries(tasks)  # left by an earlier run that was killed
    batches = list(_chunks(tasks, tasks_per_batch))
    results: dict[str, TaskResult] = {}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), disable=not progress, desc="preprocess", unit="subject")
    try:
        for batch_results in _execute(batches, callable_transform, client, num_workers):
            for result in batch_results:
                results[result.key] = result
            bar.update(len(batch_results))
    finally:
        bar.close()
    _clean_temporaries(tasks)
    report = PreprocessReport([results[task.key] for task in tasks])
    if report_path is not None:
        report.to_json(report_path)
    return report


def _failed_batch(batch: list[PreprocessTask], error: BaseException) -> list[TaskResult]:
    """Results for a batch whose worker could not return (e.g. killed too many times)."""
    reason = f"{type(error).__name__}: {error}"
    return [
        TaskResult(task.key, "failed", [spec[1] for spec in task.images], error=reason)
        for task in batch
    ]


def _execute(
    batches: list[list[PreprocessTask]],
    transform: Callable[..., Any],
    client: Any,
    num_workers: int | None,
) -> Iterator[list[TaskResult]]:
    """Run the batches on Dask, local processes or in this process; yield as they finish."""
    if client is not None:
        from dask.distributed import as_completed as dask_as_completed

        # pure=False: every submission runs (keys are unique); a task lost with a dead
        # worker is rescheduled by the scheduler, and run_task makes that rerun harmless.
        dask_futures = {
            client.submit(_run_tasks, batch, transform, pure=False): batch for batch in batches
        }
        try:
            for future in dask_as_completed(list(dask_futures)):
                try:
                    yield future.result()
                except Exception as error:  # e.g. KilledWorker
                    yield _failed_batch(dask_futures[future], error)
        except BaseException:
            # Interrupted (Ctrl-C, or the caller stopped iterating): drop queued tasks.
            client.cancel(list(dask_futures))
            raise
        return
    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    if workers == 0 or len(batches) == 1:
        for batch in batches:
            yield _run_tasks(batch, transform)
        return
    import multiprocessing
    from concurrent.futures import as_completed

    # fork is fast and the Rust pool is fork-safe; elsewhere use the platform default.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    executor = ProcessPoolExecutor(
        max_workers=min(workers, len(batches)), mp_context=context, initializer=_init_local_worker
    )
    try:
        local_futures: dict[Future[list[TaskResult]], list[PreprocessTask]] = {
            executor.submit(_run_tasks, batch, transform): batch for batch in batches
        }
        for local_future in as_completed(local_futures):
            try:
                yield local_future.result()
            except Exception as error:  # e.g. BrokenProcessPool
                yield _failed_batch(local_futures[local_future], error)
    except BaseException:
        # Interrupted: do not wait for the queued tasks (the next run resumes them).
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()
