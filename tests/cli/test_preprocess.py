"""``torchvox.preprocess`` / ``torchvox preprocess``: mirrored outputs, resume, failures, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import torchvox as tio
from torchvox.cli import main
from torchvox.processing import TEMPORARY_MARKER, build_tasks, preprocess

runner = CliRunner()


def _write(path: Path, seed: int, shape=(6, 7, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    data = torch.rand(1, *shape, generator=generator) * 100 + seed
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    tio.ScalarImage(tensor=data, affine=affine).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "inputs"
    names = ["a.nii.gz", "b.nii.gz", "site1/c.nii.gz", "site1/deep/d.nii.gz", "site2/e.nrrd"]
    for seed, name in enumerate(names):
        _write(root / name, seed)
    (root / "notes.txt").write_text("not an image")
    return root


def _outputs(root: Path) -> dict[str, np.ndarray]:
    return {
        str(path.relative_to(root)): np.asarray(tio.ScalarImage(path).data)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(".json")
    }


def _transform() -> tio.Compose:
    # Random, so equal outputs across runs prove the per-subject seeding.
    return tio.Compose([tio.RandomFlip(axes=(0, 1, 2)), tio.RescaleIntensity((0, 1))])


def test_folder_outputs_mirror_inputs(tmp_path: Path, folder: Path) -> None:
    output = tmp_path / "out"
    report = preprocess(folder, _transform(), output, num_workers=2, progress=False)
    assert report.ok and len(report.done) == 5
    results = _outputs(output)
    expected = {str(p.relative_to(folder)) for p in folder.rglob("*") if "." in p.name[1:]}
    assert set(results) == expected - {"notes.txt"}
    # Each output is the transform of its input under the task's seed.
    for task in build_tasks(folder, output):
        [(_, source, target, _)] = task.images
        with torch.random.fork_rng():
            torch.manual_seed(task.seed)
            reference = _transform()(tio.ScalarImage(source))
        assert np.array_equal(np.asarray(tio.ScalarImage(target).data), reference.numpy())
        assert np.allclose(tio.ScalarImage(target).affine, tio.ScalarImage(source).affine)
    # Same outputs with another worker count or in-process.
    again = tmp_path / "again"
    preprocess(folder, _transform(), again, num_workers=2, tasks_per_batch=2, progress=False)
    assert all(np.array_equal(results[k], v) for k, v in _outputs(again).items())
    # The caller's RNG is untouched by in-process runs.
    torch.manual_seed(5)
    expected_draw = torch.rand(1)
    torch.manual_seed(5)
    preprocess(folder, _transform(), tmp_path / "third", num_workers=0, progress=False)
    assert torch.equal(torch.rand(1), expected_draw)


def test_resume_skips_finished_outputs(tmp_path: Path, folder: Path) -> None:
    output = tmp_path / "out"
    preprocess(folder, _transform(), output, num_workers=0, progress=False)
    finished = {path: path.stat().st_mtime_ns for path in output.rglob("*.nii.gz")}
    # Simulate an interrupted run: two outputs missing, a staging folder left behind.
    removed = [output / "b.nii.gz", output / "site1/deep/d.nii.gz"]
    for path in removed:
        path.unlink()
        del finished[path]
    stale = output / "site1" / f"{TEMPORARY_MARKER}dead"
    stale.mkdir()
    (stale / "c.nii.gz").write_bytes(b"\x1f\x8b truncated")
    time.sleep(0.05)
    report = preprocess(folder, _transform(), output, num_workers=2, progress=False)
    assert sorted(r.key for r in report.done) == ["b.nii.gz", "site1/deep/d.nii.gz"]
    assert len(report.skipped) == 3
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten"
    assert all(path.is_file() for path in removed)
    assert not stale.exists()
    # overwrite=True recomputes everything.
    report = preprocess(folder, _transform(), output, num_workers=0, overwrite=True, progress=False)
    assert len(report.done) == 5


def test_interrupted_run_leaves_no_truncated_file(tmp_path: Path, folder: Path) -> None:
    """Kill a real run mid-way (SIGKILL), check every output is whole, then resume."""
    for index in range(12):
        _write(folder / "many" / f"m{index:02d}.nii.gz", 100 + index, shape=(40, 40, 40))
    output = tmp_path / "out"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            import torchvox as tio
            from torchvox.processing import preprocess

            class Slow:
                def __init__(self):
                    self.inner = tio.RescaleIntensity((0, 1))
                def __call__(self, subject):
                    time.sleep(0.15)
                    return self.inner(subject)

            preprocess({str(folder)!r}, Slow(), {str(output)!r}, num_workers=0, progress=False)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if output.is_dir() and len(list(output.glob("many/m*.nii.gz"))) >= 3:
                break
            if process.poll() is not None:
                pytest.fail(f"the run ended (code {process.returncode}) before it was killed")
            time.sleep(0.02)
        else:
            pytest.fail("the run did not produce outputs in time")
    finally:
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    partial = {
        p: p.stat().st_mtime_ns for p in output.rglob("*.nii.gz") if TEMPORARY_MARKER not in str(p)
    }
    assert 3 <= len(partial) < 17
    for path in partial:  # every output present is complete and readable
        assert tio.ScalarImage(path).data.max() == 1
    report = preprocess(folder, tio.RescaleIntensity((0, 1)), output, progress=False)
    assert report.ok
    assert len(report.skipped) == len(partial) and len(report.done) == 17 - len(partial)
    for path, mtime in partial.items():
        assert path.stat().st_mtime_ns == mtime
    assert not list(output.rglob(f"*{TEMPORARY_MARKER}*"))


def test_corrupt_input_is_reported(tmp_path: Path, folder: Path) -> None:
    (folder / "site2" / "broken.nii.gz").write_bytes(b"not a nifti file")
    output = tmp_path / "out"
    report_path = tmp_path / "report.json"
    report = preprocess(
        folder, "RescaleIntensity", output, num_workers=2, progress=False, report_path=report_path
    )
    assert not report.ok and len(report.done) == 5
    [failure] = report.failed
    assert failure.inputs == [str(folder / "site2" / "broken.nii.gz")]
    assert "not understood" in failure.error
    assert any("SimpleITK" in w for w in failure.warnings)  # kept, not printed by workers
    assert not (output / "site2" / "broken.nii.gz").exists()
    saved = json.loads(report_path.read_text())
    assert saved["failed"] == 1 and saved["done"] == 5
    # The CLI prints the failure and exits with 1, after writing the good outputs.
    cli_output = tmp_path / "cli"
    result = runner.invoke(
        main.app,
        ["preprocess", str(folder), "RescaleIntensity", str(cli_output), "-j", "0", "-P"],
    )
    assert result.exit_code == 1
    assert "5 processed, 0 skipped (already done), 1 failed" in result.output
    assert "broken.nii.gz" in result.output
    assert len(list(cli_output.rglob("*.nii.gz"))) == 4


def test_cli_kwargs_suffix_and_yaml_config(tmp_path: Path, folder: Path) -> None:
    out_kwargs = tmp_path / "kw"
    result = runner.invoke(
        main.app,
        [
            "preprocess", str(folder), "RescaleIntensity", str(out_kwargs),
            "--kwargs", "out_min_max=(-1,1)", "--suffix", ".nii", "-j", "2", "-P",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    outputs = _outputs(out_kwargs)
    assert "site2/e.nii" in outputs and len(outputs) == 5
    assert all(v.min() == -1 and v.max() == 1 for v in outputs.values())
    # A YAML file from to_hydra_config gives the same result as the object.
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(_transform().to_hydra_config()))
    out_yaml, out_object = tmp_path / "yaml", tmp_path / "object"
    result = runner.invoke(main.app, ["preprocess", str(folder), str(config), str(out_yaml), "-P"])
    assert result.exit_code == 0, result.output
    preprocess(folder, _transform(), out_object, num_workers=0, progress=False)
    yaml_outputs, object_outputs = _outputs(out_yaml), _outputs(out_object)
    assert yaml_outputs.keys() == object_outputs.keys()
    assert all(np.array_equal(yaml_outputs[k], object_outputs[k]) for k in yaml_outputs)
    # TorchIO targets map to torchvox classes by name.
    torchio_config = tmp_path / "torchio.yaml"
    torchio_config.write_text(
        "_target_: torchio.transforms.RescaleIntensity\nout_min_max: [0, 2]\n"
    )
    report = preprocess(folder, torchio_config, tmp_path / "tio", num_workers=0, progress=False)
    assert report.ok
    assert all(v.max() == 2 for v in _outputs(tmp_path / "tio").values())


def test_unknown_transform_and_bad_arguments(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(ValueError, match="NoSuch"):
        preprocess(folder, "NoSuch", tmp_path / "o", progress=False)
    with pytest.raises(FileNotFoundError):
        preprocess(tmp_path / "missing", "RescaleIntensity", tmp_path / "o", progress=False)
    with pytest.raises(ValueError, match="num_workers"):
        preprocess(folder, "RescaleIntensity", tmp_path / "o", num_workers=-1)
    with pytest.raises(ValueError, match="overwrite"):
        preprocess(folder, "RescaleIntensity", folder, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images"):
        preprocess(tmp_path / "empty", "RescaleIntensity", tmp_path / "p")


def test_csv_subjects_are_transformed_together(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rows = ["subject,t1,seg"]
    for index in range(4):
        _write(root / f"sub{index}" / "t1.nii.gz", index)
        seg = (tio.ScalarImage(root / f"sub{index}" / "t1.nii.gz").data > 50).to(torch.uint8)
        seg_path = root / f"sub{index}" / "seg.nii.gz"
        tio.LabelMap(tensor=seg, affine=np.diag([1.0, 1.5, 2.0, 1.0])).save(seg_path)
        rows.append(f"s{index},sub{index}/t1.nii.gz,sub{index}/seg.nii.gz")
    rows.append("s9,,")  # an empty row is ignored
    table = root / "subjects.csv"
    table.write_text("\n".join(rows) + "\n")
    output = tmp_path / "out"
    transform = tio.Compose([tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5)])
    report = preprocess(
        table, transform, output, label_pattern="seg", num_workers=2, progress=False
    )
    assert report.ok and sorted(r.key for r in report.done) == ["s0", "s1", "s2", "s3"]
    flips_seen = set()
    for index in range(4):
        t1 = tio.ScalarImage(output / f"sub{index}" / "t1.nii.gz").data
        seg = tio.LabelMap(output / f"sub{index}" / "seg.nii.gz")
        assert seg.data.dtype == torch.uint8
        # The same random flip was applied to both images of the subject.
        assert torch.equal(seg.data, (t1 > 50).to(torch.uint8))
        original = tio.ScalarImage(root / f"sub{index}" / "t1.nii.gz").data
        flips_seen.add(tuple(not torch.equal(t1, original.flip(d)) for d in (1, 2, 3)))
    assert len(flips_seen) > 1  # subjects got different seeds


dask_distributed = pytest.importorskip("dask.distributed")


class _SlowRescale:
    """Sleeps so that a worker can be killed while it works (pickled by value)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.inner = _transform()

    def __call__(self, subject):
        time.sleep(self.seconds)
        return self.inner(subject)


@pytest.mark.slow
def test_dask_cluster_matches_local_and_survives_killed_worker(
    tmp_path: Path, folder: Path
) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    for index in range(5):
        _write(folder / "extra" / f"x{index}.nii.gz", 50 + index)
    local = tmp_path / "local"
    preprocess(folder, _transform(), local, num_workers=2, progress=False)
    expected = _outputs(local)
    assert len(expected) == 10
    with (
        dask_distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        dask_distributed.Client(cluster) as client,
    ):
        # 1. Same outputs as local processes, through the CLI's --scheduler.
        on_dask = tmp_path / "dask"
        config = tmp_path / "cfg.yaml"
        config.write_text(yaml.safe_dump(_transform().to_hydra_config()))
        address = cluster.scheduler_address
        args = ["preprocess", str(folder), str(config), str(on_dask), "-P", "--scheduler", address]
        result = runner.invoke(main.app, args)
        assert result.exit_code == 0, result.output
        got = _outputs(on_dask)
        assert got.keys() == expected.keys()
        assert all(np.array_equal(got[k], expected[k]) for k in expected)

        # 2. Kill a worker while it transforms: its task is rerun elsewhere.
        killed: list[int] = []

        def kill_busy_worker() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(0.4)  # inside the sleep of _SlowRescale
                    pids = client.run(os.getpid, workers=[busy[0]])
                    pid = pids[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_busy_worker)
        survived = tmp_path / "survived"
        killer.start()
        report = preprocess(folder, _SlowRescale(1.5), survived, client=client, progress=False)
        killer.join()
        assert killed, "no worker was killed"
        assert report.ok, report.summary()
        assert len(report.done) == 10 and len(report.results) == 10
        assert len({r.key for r in report.results}) == 10
        # Every output was written by exactly one (successful) attempt.
        written = [path for r in report.results for path in r.written]
        assert len(written) == len(set(written)) == 10
        got = _outputs(survived)
        assert got.keys() == expected.keys()
        assert all(np.array_equal(got[k], expected[k]) for k in expected)
        assert not list(survived.rglob(f"*{TEMPORARY_MARKER}*"))
