"""TorchIO's dataset classes, read from small fake folders with the expected layouts.

Downloads are exercised against a local HTTP server (the machine has no internet);
unreachable sources must raise DatasetNotFoundError naming the URL and the layout.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox import datasets
from torchvox.datasets import DatasetNotFoundError, templates
from torchvox.datasets import download as dl

UNREACHABLE = "http://127.0.0.1:9/nothing/here.zip"  # discard port: connection refused


def _save(path: Path, value: float = 1.0, shape=(5, 6, 7), label: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(int(value * 1000) % 2**31)
    if label:
        data = (torch.rand(1, *shape, generator=generator) > 0.5).to(torch.uint8)
        tio.LabelMap(tensor=data).save(path)
    else:
        data = torch.rand(1, *shape, generator=generator) + value
        tio.ScalarImage(tensor=data).save(path)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ~/.cache/torchvox in a temporary home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = tio.utils.get_torchvox_cache_dir()
    assert str(folder).startswith(str(tmp_path))
    return folder


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server: (base URL, folder it serves)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    finally:
        httpd.shutdown()
        httpd.server_close()


# ------------------------------------------------------------------------- download


def test_download_url_checks_md5_and_is_atomic(tmp_path: Path, server) -> None:
    base, served = server
    (served / "file.bin").write_bytes(b"abc" * 1000)
    md5 = hashlib.md5(b"abc" * 1000).hexdigest()
    path = dl.download_url(base + "file.bin", tmp_path / "dl", md5=md5)
    assert path.read_bytes() == b"abc" * 1000 and dl.check_integrity(path, md5)
    with pytest.raises(DatasetNotFoundError, match="MD5"):
        dl.download_url(base + "file.bin", tmp_path / "bad", md5="0" * 32, layout="  x/y")
    assert not list((tmp_path / "bad").iterdir())  # no partial or unchecked file kept
    with pytest.raises(DatasetNotFoundError, match=r"127\.0\.0\.1:9.*\n.*Expected layout"):
        dl.download_url(UNREACHABLE, tmp_path / "none", layout="  root/file")
    with pytest.raises(DatasetNotFoundError, match="404"):
        dl.download_url(base + "missing.zip", tmp_path / "none")


def test_extract_archive_formats_and_unsafe_members(tmp_path: Path) -> None:
    import tarfile

    source = tmp_path / "payload.txt"
    source.write_text("hello")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(source, "inner/payload.txt")
    assert (
        dl.extract_archive(archive, tmp_path / "z") / "inner/payload.txt"
    ).read_text() == "hello"
    tar_path = tmp_path / "a.tar.gz"
    with tarfile.open(tar_path, "w:gz") as handle:
        handle.add(source, "t/payload.txt")
    dl.extract_archive(tar_path, tmp_path / "t", remove_finished=True)
    assert (tmp_path / "t/t/payload.txt").read_text() == "hello" and not tar_path.exists()
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as handle:
        handle.writestr("../../outside.txt", "x")
    with pytest.raises(DatasetNotFoundError, match="outside"):
        dl.extract_archive(evil, tmp_path / "e")


# ------------------------------------------------------------------- SubjectsDatasets


def test_ixi_reads_modalities_and_skips_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "ixi"
    for index, subject in enumerate(["IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212"]):
        _save(root / "T1" / f"{subject}-T1.nii.gz", index)
        if index != 2:  # the third subject has no T2: skipped
            _save(root / "T2" / f"{subject}-T2.nii.gz", index + 10)
    dataset = datasets.IXI(root, modalities=("T1", "T2"))
    assert len(dataset) == 2
    subject = dataset[1]
    assert subject["subject_id"] == "IXI012-HH-1211"
    assert set(subject.get_images_names()) == {"T1", "T2"}
    assert subject["T2"].data.min() >= 11
    assert len(datasets.IXI(root, modalities=("T1",))) == 3
    with pytest.raises(ValueError, match="Modality"):
        datasets.IXI(root, modalities=("T3",))
    with pytest.raises(DatasetNotFoundError, match="IXI-PD.tar") as info:
        datasets.IXI(root, modalities=("T1", "PD"))
    assert "Expected layout" in str(info.value) and isinstance(info.value, RuntimeError)


def test_ixi_download_failure_names_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(datasets.IXI, "base_url", "http://127.0.0.1:9/IXI-{modality}.tar")
    with pytest.raises(DatasetNotFoundError, match=r"IXI-T1\.tar") as info:
        datasets.IXI(tmp_path / "ixi", download=True, modalities=("T1",))
    assert "root/T1" in str(info.value) or "/T1/" in str(info.value)
    assert not (tmp_path / "ixi" / "T1").exists()  # no half-extracted folder


def test_ixi_tiny(tmp_path: Path, server, monkeypatch) -> None:
    base, served = server
    with pytest.raises(DatasetNotFoundError, match="dropbox"):
        datasets.IXITiny(tmp_path / "missing")
    # A real download from the local server: zip with ixi_tiny/{image,label}.
    staging = tmp_path / "make"
    for index in range(3):
        _save(staging / "image" / f"IXI00{index}-Guys-000{index}_image.nii.gz", index)
        _save(staging / "label" / f"IXI00{index}-Guys-000{index}_label.nii.gz", label=True)
    archive = served / "ixi_tiny.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in staging.rglob("*.nii.gz"):
            handle.write(path, f"ixi_tiny/{path.relative_to(staging)}")
    monkeypatch.setattr(datasets.IXITiny, "url", base + "ixi_tiny.zip")
    monkeypatch.setattr(datasets.IXITiny, "md5", dl.calculate_md5(archive))
    dataset = datasets.IXITiny(tmp_path / "tiny", download=True, transform=tio.RescaleIntensity())
    assert len(dataset) == 3
    subject = dataset[2]
    assert isinstance(subject["label"], tio.LabelMap)
    assert subject["subject_id"] == "IXI002-Guys"  # TorchIO drops the last "-" part
    assert float(subject["image"].data.max()) == pytest.approx(1.0)


def test_episurg(tmp_path: Path) -> None:
    root = tmp_path / "ep"
    base = root / "EPISURG" / "subjects"
    rows = [("sub-0001", "L", "Temporal"), ("sub-0002", "R", "Frontal")]
    _save(base / "sub-0001/preop/sub-0001_preop-t1mri.nii.gz", 1)
    _save(base / "sub-0001/postop/sub-0001_postop-t1mri.nii.gz", 2)
    _save(base / "sub-0001/postop/sub-0001_postop-seg-1.nii.gz", label=True)
    _save(base / "sub-0001/postop/sub-0001_postop-seg-3.nii.gz", label=True)
    _save(base / "sub-0002/postop/sub-0002_postop-t1mri.nii.gz", 3)
    with (root / "EPISURG" / "subjects.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Subject", "Hemisphere", "Type"])
        writer.writerows(rows)
    dataset = datasets.EPISURG(root)
    assert len(dataset) == 2
    first = dataset[0]
    assert set(first.get_images_names()) == {"preop_mri", "postop_mri", "seg_1", "seg_3"}
    assert first["hemisphere"] == "L" and first["surgery_type"] == "Temporal"
    assert len(dataset.get_labeled()) == 1 and len(dataset.get_unlabeled()) == 1
    assert len(dataset.get_paired()) == 1
    with pytest.raises(DatasetNotFoundError, match="EPISURG.zip"):
        datasets.EPISURG(tmp_path / "nothing")


def test_episurg_download(tmp_path: Path, server, monkeypatch) -> None:
    base, served = server
    staging = tmp_path / "make" / "EPISURG"
    _save(staging / "subjects/sub-0007/postop/sub-0007_postop-t1mri.nii.gz", 7)
    (staging / "subjects.csv").write_text("Subject,Hemisphere,Type\nsub-0007,R,Parietal\n")
    archive = served / "EPISURG.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in staging.rglob("*"):
            handle.write(path, path.relative_to(staging.parent))
    monkeypatch.setattr(datasets.EPISURG, "data_url", base + "EPISURG.zip")
    monkeypatch.setattr(datasets.EPISURG, "md5", dl.calculate_md5(archive))
    dataset = datasets.EPISURG(tmp_path / "root", download=True)
    assert len(dataset) == 1 and dataset[0]["surgery_type"] == "Parietal"
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["EPISURG"]
    monkeypatch.setattr(datasets.EPISURG, "md5", "0" * 32)
    with pytest.raises(DatasetNotFoundError, match="MD5"):
        datasets.EPISURG(tmp_path / "other", download=True)
    assert not (tmp_path / "other" / "EPISURG").exists()


def _write_dicom_series(folder: Path, value: int) -> None:
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.GetImageFromArray(np.full((3, 4, 5), value, dtype=np.int16))
    for index in range(3):
        plane = volume[:, :, index]
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        plane.SetMetaData("0020|0013", str(index + 1))
        plane.SetMetaData("0020|0032", f"0\\0\\{index}")
        plane.SetMetaData("0020|000e", f"1.2.826.0.1.3680043.2.1125.{value}")
        writer.SetFileName(str(folder / f"Image-{index + 1}.dcm"))
        writer.Execute(plane)


def test_rsna_miccai(tmp_path: Path) -> None:
    root = tmp_path / "rsna"
    for subject, value in (("00000", 10), ("00002", 20), ("00109", 30)):
        _write_dicom_series(root / "train" / subject / "FLAIR", value)
    (root / "train" / "not_a_subject").mkdir()
    (root / "train_labels.csv").write_text("BraTS21ID,MGMT_value\n0,1\n2,0\n109,1\n")
    dataset = datasets.RSNAMICCAI(root, modalities="FLAIR")
    assert len(dataset) == 2  # 00109 ignored
    subject = dataset[1]
    assert subject["BraTS21ID"] == "00002" and subject["MGMT_value"] == 0
    assert subject["FLAIR"].spatial_shape == (5, 4, 3)
    assert torch.all(subject["FLAIR"].data == 20)
    assert len(datasets.RSNAMICCAI(root, modalities=["FLAIR"], ignore_empty=False)) == 3
    with pytest.raises(DatasetNotFoundError, match="kaggle"):
        datasets.RSNAMICCAI(root, train=False, modalities="FLAIR")
    with pytest.raises(ValueError, match="Modality"):
        datasets.RSNAMICCAI(root, modalities="T3")


def test_medmnist(tmp_path: Path, server, monkeypatch) -> None:
    base, served = server
    rng = np.random.default_rng(0)
    arrays = {
        f"{split}_{kind}": (
            rng.integers(0, 255, (n, 28, 28, 28), dtype=np.uint8)
            if kind == "images"
            else rng.integers(0, 11, (n, 1))
        )
        for split, n in (("train", 4), ("val", 2), ("test", 3))
        for kind in ("images", "labels")
    }
    np.savez(served / "organmnist3d.npz", **arrays)
    monkeypatch.setattr(datasets.MedMNIST, "BASE_URL", base.rstrip("/"))
    dataset = datasets.OrganMNIST3D("validation", root=tmp_path / "mnist")
    assert len(dataset) == 2
    subject = dataset[1]
    assert subject["image"].shape == (1, 28, 28, 28)
    assert np.array_equal(subject["image"].numpy()[0], arrays["val_images"][1])
    assert torch.equal(subject["labels"], torch.from_numpy(arrays["val_labels"][1]))
    assert len(datasets.OrganMNIST3D("train", root=tmp_path / "mnist", download=False)) == 4
    with pytest.raises(DatasetNotFoundError, match="nodulemnist3d.npz"):
        datasets.NoduleMNIST3D("test", root=tmp_path / "mnist", download=False)
    with pytest.raises(ValueError, match="split"):
        datasets.OrganMNIST3D("dev", root=tmp_path / "mnist")


# -------------------------------------------------------------------- Subject templates


def test_colin27_versions(cache: Path) -> None:
    folder = cache / "mni_colin27_1998_nifti"
    for stem in ("colin27_t1_tal_lin", "colin27_t1_tal_lin_headmask"):
        _save(folder / f"{stem}.nii.gz", 1, label="mask" in stem)
    _save(folder / "colin27_t1_tal_lin_mask.nii", label=True)  # .nii is accepted too
    colin = datasets.Colin27()
    assert tuple(colin.keys()) == ("t1", "head", "brain")
    assert isinstance(colin["brain"], tio.LabelMap) and colin["t1"].data.min() >= 1
    with pytest.raises(ValueError, match="1998 or 2008"):
        datasets.Colin27(2000)


def test_colin27_download_rounds_2008_labels(cache: Path, server, monkeypatch) -> None:
    base, served = server
    staging = served / "make"
    for name in ("t1", "t2", "pd"):
        _save(staging / f"colin27_{name}_tal_hires.nii", 2)
    cls = torch.tensor([0.0, 1.2, 2.9, 11.1]).repeat(6, 7, 1)[None]
    tio.ScalarImage(tensor=cls).save(staging / "colin27_cls_tal_hires.nii")
    (served / "colin27").mkdir()
    with zipfile.ZipFile(served / "colin27" / "mni_colin27_2008_nifti.zip", "w") as handle:
        for path in staging.iterdir():
            handle.write(path, path.name)
    monkeypatch.setattr(templates.SubjectMNI, "url_base", base)
    colin = datasets.Colin27(version=2008)
    assert tuple(colin.keys()) == ("t1", "t2", "pd", "cls")
    assert colin["cls"].data.dtype == torch.uint8
    assert sorted(torch.unique(colin["cls"].data).tolist()) == [0, 1, 3, 11]
    assert colin["cls"]["labels"][3] == "White Matter"
    assert not list(cache.glob(".*download"))  # staging folder removed


def test_unreachable_templates_name_url_and_layout(cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(templates.SubjectMNI, "url_base", "http://127.0.0.1:9/")
    monkeypatch.setattr(templates.ICBM2009CNonlinearSymmetric, "url_base", "http://127.0.0.1:9/")
    monkeypatch.setattr(templates.SubjectITKSNAP, "url_base", "http://127.0.0.1:9/")
    monkeypatch.setattr(templates, "SLICER_URL", "http://127.0.0.1:9/")
    monkeypatch.setattr(templates.FPG, "repo_dir", "http://127.0.0.1:9/fernando/")
    cases = [
        (datasets.Sheep, "NIFTI_ovine_05mm.zip", "ovine_model_05"),
        (datasets.ICBM2009CNonlinearSymmetric, "mni_icbm152_nlin_sym_09c_nifti.zip", "csf"),
        (datasets.BrainTumor, "braintumor.zip", "BRATS_HG0015_truth.mha"),
        (datasets.T1T2, "ashs_test.zip", "tse_3t_dr.nii"),
        (datasets.AorticValve, "bav_example.zip", "bav_frame_25_manseg"),
        (datasets.Slicer, "SHA256/cc211f0d", "MRHead.nrrd"),
        (datasets.FPG, "fernando/t1.nii.gz", "t1_to_mni_affine.h5"),
    ]
    for cls, url_part, layout_part in cases:
        with pytest.raises(DatasetNotFoundError) as info:
            cls()
        message = str(info.value)
        assert "http://127.0.0.1:9/" in message and url_part in message, message
        assert "Expected layout" in message and layout_part in message, message


def test_icbm_tissues(cache: Path) -> None:
    folder = cache / "mni_icbm152_nlin_sym_09c_nifti" / "mni_icbm152_nlin_sym_09c"
    p, m = "mni_icbm152", "tal_nlin_sym_09c"
    for index, name in enumerate(["t1", "t2", "pd", "gm", "wm", "csf"]):
        _save(folder / f"{p}_{name}_{m}.nii", index)
    for mask in ("eye_mask", "face_mask", "mask"):
        _save(folder / f"{p}_t1_{m}_{mask}.nii", label=True)
    icbm = datasets.ICBM2009CNonlinearSymmetric()
    assert tuple(icbm.keys()) == ("t1", "eyes", "face", "brain", "t2", "pd", "tissues")
    assert icbm["tissues"].shape == (3, 5, 6, 7)
    assert [float(c.min()) >= v for c, v in zip(icbm["tissues"].data, (3, 4, 5))] == [True] * 3
    assert icbm["pd"].data.min() >= 2
    separate = datasets.ICBM2009CNonlinearSymmetric(load_4d_tissues=False)
    assert tuple(separate.keys())[-3:] == ("gm", "wm", "csf")


def test_sheep_download_from_server(cache: Path, server, monkeypatch) -> None:
    base, served = server
    (served / "sheep").mkdir()
    t1 = _save(served / "make" / "ovine_model_05.nii", 4)
    with zipfile.ZipFile(served / "sheep" / "NIFTI_ovine_05mm.zip", "w") as handle:
        handle.write(t1, "ovine_model_05.nii")
        handle.writestr("masks/brain.txt", "unused")
    monkeypatch.setattr(templates.SubjectMNI, "url_base", base)
    sheep = datasets.Sheep()
    assert tuple(sheep.keys()) == ("t1",) and sheep["t1"].data.min() >= 4
    # Second time: read from the cache without network.
    monkeypatch.setattr(templates.SubjectMNI, "url_base", "http://127.0.0.1:9/")
    assert datasets.Sheep()["t1"].shape == (1, 5, 6, 7)


def test_itk_snap_fpg_and_slicer_from_cache(cache: Path) -> None:
    import SimpleITK as sitk

    inner = cache / "braintumor" / "braintumor"
    for name in ("T1", "T1C", "T2", "FLAIR"):
        _save(inner / f"BRATS_HG0015_{name}.mha", 1)
    _save(inner / "BRATS_HG0015_truth.mha", label=True)
    tumor = datasets.BrainTumor()
    assert tuple(tumor.keys()) == ("t1", "t1c", "t2", "flair", "seg")
    assert isinstance(tumor["seg"], tio.LabelMap)
    for name in ("mprage_3T_bet_dr.nii", "tse_3t_dr.nii"):
        _save(cache / "ashs_test" / "ashs_test" / name)
    assert tuple(datasets.T1T2().keys()) == ("mprage", "tse")
    for name in ("14", "25"):
        _save(cache / "bav_example" / "bav_example" / f"bav_frame_{name}.nii.gz")
        _save(cache / "bav_example/bav_example" / f"bav_frame_{name}_manseg.nii.gz", label=True)
    assert tuple(datasets.AorticValve().keys()) == ("b14", "b14_seg", "b25", "b25_seg")
    # FPG: images and ITK transform files.
    fpg_dir = cache / "fpg"
    _save(fpg_dir / "t1.nii.gz", 1)
    _save(fpg_dir / "t1_seg_gif.nii.gz", label=True)
    euler = sitk.Euler3DTransform((0, 0, 0), 0.1, 0.0, 0.0, (1, 2, 3))
    rigid = sitk.AffineTransform(euler.GetMatrix(), euler.GetTranslation())
    sitk.WriteTransform(rigid, str(fpg_dir / "t1_to_mni.tfm"))
    sitk.WriteTransform(sitk.AffineTransform(3), str(fpg_dir / "t1_to_mni_affine.h5"))
    fpg = datasets.FPG()
    assert tuple(fpg.keys()) == ("t1", "seg")
    assert fpg["t1"]["rigid_matrix"].shape == (4, 4)
    assert torch.allclose(fpg["seg"]["affine_matrix"].double(), torch.eye(4, dtype=torch.float64))
    figure = fpg.plot(return_fig=True, show=False)
    assert len(figure.axes) == 6
    # Slicer: the nrrd in the cache, named after the file.
    _save(cache / "slicer" / "CT_chest.nrrd", 5)
    chest = datasets.Slicer("CTChest")
    assert tuple(chest.keys()) == ("CT_chest",) and chest["CT_chest"].data.min() >= 5
    with pytest.raises(ValueError, match="Valid names"):
        datasets.Slicer("Nope")


def test_zone_plate() -> None:
    plate = datasets.ZonePlate(size=41)
    image = plate["image"]
    assert image.shape == (1, 41, 41, 41) and image.data.dtype == torch.float64
    data = image.numpy()[0]
    # Centre voxel at the world origin; the image is symmetric and g(0) = 0.
    assert np.allclose(image.affine[:3, 3] + 20, 0)
    assert data[20, 20, 20] == 0
    assert np.allclose(data, data[::-1]) and np.allclose(data, data.transpose(1, 0, 2))
    # Along an axis, g(r) = sin(0.8 pi r^2 / (2 * 20)) * window(r).
    r = np.arange(21.0)
    window = 0.5 * np.tanh((20 - r) / 2) + 0.5
    assert np.allclose(data[20:, 20, 20], np.sin(0.8 * np.pi * r**2 / 40) * window)
    # Corners (r = 34.6 > r_m = 20) are windowed out.
    assert abs(data[0, 0, 0]) < 1e-5
    assert datasets.ZonePlate(size=8)["image"].shape == (1, 8, 8, 8)
    for bad in (2, 3.5, True):
        with pytest.raises(ValueError, match="size"):
            datasets.ZonePlate(size=bad)


# ----------------------------------------------------------------------- Decathlon


def test_decathlon_msd_layout(tmp_path: Path) -> None:
    root = tmp_path / "Task02_Heart"
    training = []
    for case in ("la_003", "la_004"):
        _save(root / "imagesTr" / f"{case}.nii.gz", 1)
        _save(root / "labelsTr" / f"{case}.nii.gz", label=True)
        training.append(
            {"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"}
        )
    _save(root / "imagesTs" / "la_001.nii.gz", 2)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "LeftAtrium",
                "modality": {"0": "MRI"},
                "labels": {"0": "background", "1": "left atrium"},
                "training": training,
                "test": ["./imagesTs/la_001.nii.gz"],
            }
        )
    )
    dataset = datasets.DecathlonDataset(root, transform=tio.RescaleIntensity())
    assert len(dataset) == 2 and dataset.labels == {0: "background", 1: "left atrium"}
    assert dataset.channel_names == {0: "MRI"}
    subject = dataset[1]
    assert subject["case_id"] == "la_004" and isinstance(subject["label"], tio.LabelMap)
    test = datasets.DecathlonDataset(root, split="test")
    assert len(test) == 1 and "label" not in test[0]
    (root / "labelsTr" / "la_004.nii.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="la_004"):
        datasets.DecathlonDataset(root)


def test_decathlon_nnunet_v2_layout(tmp_path: Path) -> None:
    root = tmp_path / "Dataset005_Prostate"
    for case in ("prostate_00", "prostate_01"):
        for channel in range(2):
            _save(root / "imagesTr" / f"{case}_{channel:04d}.nii.gz", 10 * channel)
        _save(root / "labelsTr" / f"{case}.nii.gz", label=True)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "T2", "1": "ADC"},
                "labels": {"background": 0, "PZ": 1, "TZ": 2},
                "numTraining": 2,
                "file_ending": ".nii.gz",
            }
        )
    )
    dataset = datasets.DecathlonDataset(root, split="train")
    assert len(dataset) == 2 and dataset.labels == {0: "background", 1: "PZ", 2: "TZ"}
    subject = dataset[0]
    assert subject["image"].shape == (2, 5, 6, 7)
    # Channels in index order: channel 1 (ADC) was written with offset 10.
    assert subject["image"].data[1].min() >= 10 > subject["image"].data[0].max()
    (root / "imagesTr" / "prostate_01_0001.nii.gz").unlink()
    with pytest.raises(ValueError, match="channels"):
        datasets.DecathlonDataset(root)
    with pytest.raises(DatasetNotFoundError, match="imagesTs"):
        datasets.DecathlonDataset(root, split="test")
    with pytest.raises(ValueError, match="split"):
        datasets.DecathlonDataset(root, split="val")


def test_pediatric(cache: Path, monkeypatch) -> None:
    folder = cache / "nihpd_sym_04.5-08.5_nifti"
    for suffix in ("t1w", "t2w", "pdw"):
        _save(folder / f"nihpd_sym_04.5-08.5_{suffix}.nii", 3)
    _save(folder / "nihpd_sym_04.5-08.5_mask.nii", label=True)
    subject = datasets.Pediatric((4.5, 8.5), symmetric=True)
    assert tuple(subject.keys()) == ("t1", "t2", "pd", "mask")
    monkeypatch.setattr(datasets.Pediatric, "url_dir", "http://127.0.0.1:9/")
    with pytest.raises(DatasetNotFoundError, match="nihpd_asym_13.0-18.5_nifti.zip"):
        datasets.Pediatric((13, 18.5))
    with pytest.raises(ValueError, match="Years"):
        datasets.Pediatric((3, 5))


def _bite3_folder(root: Path, numbers=datasets.BITE3.subject_numbers) -> None:
    for number in numbers:
        folder = root / "group3" / f"{number:02d}"
        _save(folder / f"{number:02d}_preop_mri.mnc", number)
        _save(folder / f"{number:02d}_postop_mri.mnc", number + 0.5)
    _save(root / "group3" / "01" / "01_tumor1.mnc", label=True)
    _save(root / "group3" / "01" / "01_tumor2.mnc", label=True)


def test_bite3(tmp_path: Path) -> None:
    _bite3_folder(tmp_path / "bite")
    dataset = datasets.BITE3(tmp_path / "bite")
    assert len(dataset) == 13  # 01 to 14 without 13
    first, last = dataset[0], dataset[12]
    assert set(first.get_images_names()) == {"preop", "postop", "tumor1", "tumor2"}
    assert isinstance(first["tumor1"], tio.LabelMap)
    assert set(last.get_images_names()) == {"preop", "postop"}
    assert float(last["preop"].data.min()) >= 14
    assert float(last["postop"].data.min()) >= 14.5
    with pytest.raises(DatasetNotFoundError, match="group3.tar.gz"):
        datasets.BITE3(tmp_path / "nothing")


def test_bite3_download(tmp_path: Path, server, monkeypatch) -> None:
    import tarfile

    base, served = server
    _bite3_folder(tmp_path / "make")
    archive = served / "group3.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(tmp_path / "make" / "group3", arcname="group3")
    monkeypatch.setattr(datasets.BITE3, "base_url", base)
    monkeypatch.setattr(datasets.BITE3, "md5", dl.calculate_md5(archive))
    dataset = datasets.BITE3(tmp_path / "root", download=True)
    assert len(dataset) == 13
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["group3"]
    monkeypatch.setattr(datasets.BITE3, "md5", "0" * 32)
    with pytest.raises(DatasetNotFoundError, match="MD5"):
        datasets.BITE3(tmp_path / "other", download=True)
    assert not (tmp_path / "other" / "group3").exists()


def test_rsna_cervical_spine_fracture(tmp_path: Path) -> None:
    root = tmp_path / "spine"
    uids = ["1.2.826.0.1.3680043.10", "1.2.826.0.1.3680043.20"]
    for value, uid in zip((10, 20), uids, strict=True):
        _write_dicom_series(root / "train_images" / uid, value)
    _save(root / "segmentations" / f"{uids[1]}.nii", label=True, shape=(5, 4, 3))
    (root / "train.csv").write_text(
        "StudyInstanceUID,patient_overall,C1,C2\n" + f"{uids[0]},1,0,1\n{uids[1]},0,0,0\n"
    )
    (root / "train_bounding_boxes.csv").write_text(
        "StudyInstanceUID,x,y,width,height,slice_number\n"
        f"{uids[0]},10.5,20,30,40,7\n{uids[0]},1,2,3,4,8\n"
    )
    plain = datasets.RSNACervicalSpineFracture(root)
    assert len(plain) == 2
    subject = plain[0]
    assert subject["StudyInstanceUID"] == uids[0]
    assert subject["patient_overall"] == 1 and subject["C2"] == 1
    assert torch.all(subject["ct"].data == 10)
    assert "seg" not in subject and "boxes" not in subject
    full = datasets.RSNACervicalSpineFracture(root, add_segmentations=True, add_bounding_boxes=True)
    first, second = full[0], full[1]
    assert [box["slice_number"] for box in first["boxes"]] == [7, 8]
    assert first["boxes"][0]["x"] == 10.5
    assert "seg" not in first and "boxes" not in second
    assert isinstance(second["seg"], tio.LabelMap)
    with pytest.raises(DatasetNotFoundError, match="kaggle"):
        datasets.RSNACervicalSpineFracture(tmp_path / "nothing")


def _ct_rate_folder(root: Path) -> None:
    """A CT-RATE layout with patients 1, 2 and 10 (validation split: 3)."""
    tables = {
        "train": [
            ("train_1_a_1.nii.gz", 512, "SIEMENS"),
            ("train_1_a_2.nii.gz", 512, "SIEMENS"),
            ("train_2_a_1.nii.gz", 768, "GE"),
            ("train_10_b_1.nii.gz", 512, "GE"),
            ("train_2_b_1.nii.gz", 256, "GE"),  # a size no split keeps by default
        ],
        "validation": [("valid_3_a_1.nii.gz", 1024, "PHILIPS")],
    }
    for table, rows in tables.items():
        split = "valid" if table == "validation" else "train"
        folders = {
            "metadata": f"{table}_metadata.csv",
            "radiology_text_reports": f"{table}_reports.csv",
            "multi_abnormality_labels": f"{split}_predicted_labels.csv",
        }
        for folder in folders:
            (root / "dataset" / folder).mkdir(parents=True, exist_ok=True)
        with (root / "dataset" / "metadata" / folders["metadata"]).open("w") as handle:
            handle.write("VolumeName,Rows,Manufacturer\n")
            handle.writelines(f"{name},{size},{maker}\n" for name, size, maker in rows)
        with (root / "dataset" / "radiology_text_reports" / folders["radiology_text_reports"]).open(
            "w"
        ) as handle:
            handle.write(
                "VolumeName,ClinicalInformation_EN,Findings_EN,Impressions_EN,Technique_EN\n"
            )
            handle.writelines(f"{n},info {n},findings,impression,technique\n" for n, *_ in rows)
        with (
            root / "dataset" / "multi_abnormality_labels" / folders["multi_abnormality_labels"]
        ).open("w") as handle:
            handle.write("VolumeName,Cardiomegaly,Emphysema\n")
            handle.writelines(f"{n},{i % 2},1\n" for i, (n, *_) in enumerate(rows))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"split": "validation"},
        {"num_subjects": 2, "sizes": [512]},
        {"load_fixed": False, "report_key": "text"},
    ],
)
def test_ct_rate_matches_torchio(tmp_path: Path, kwargs) -> None:
    import torchio

    _ct_rate_folder(tmp_path)
    ours = datasets.CtRate(tmp_path, **kwargs)
    theirs = torchio.datasets.CtRate(tmp_path, **kwargs)
    assert ours.metadata.equals(theirs.metadata)
    assert len(ours) == len(theirs) > 0
    for our_subject, their_subject in zip(ours._subjects, theirs._subjects, strict=True):
        assert our_subject["subject_id"] == their_subject["subject_id"]
        assert our_subject.get_images_names() == their_subject.get_images_names()
        for name in our_subject.get_images_names():
            our_image, their_image = our_subject[name], their_subject[name]
            assert our_image.path == their_image.path
            our_items = {k: v for k, v in our_image.items() if k not in ("path", "stem", "type")}
            their_items = {
                k: v for k, v in their_image.items() if k not in ("path", "stem", "type")
            }
            assert our_items == their_items


def test_ct_rate_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Invalid split"):
        datasets.CtRate(tmp_path, split="test")
    with pytest.raises(DatasetNotFoundError, match="huggingface.co"):
        datasets.CtRate(tmp_path)
    _ct_rate_folder(tmp_path)
    # Paths are only checked when asked to.
    assert len(datasets.CtRate(tmp_path)) == 3
    with pytest.raises(FileNotFoundError):
        datasets.CtRate(tmp_path, verify_paths=True)


def test_download_helpers_take_torchio_argument_names(tmp_path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc" * 100)
    md5 = dl.calculate_md5(fpath=path, chunk_size=7)
    assert dl.check_md5(fpath=path, md5=md5, chunk_size=5)
    assert dl.check_integrity(fpath=path, md5=md5)
    assert not dl.check_integrity(fpath=tmp_path / "missing.bin")
