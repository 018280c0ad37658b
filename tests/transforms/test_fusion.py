"""Fused resampling in Compose: one interpolation per run of spatial transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio
from scipy import ndimage

import torchvox as tio


def subject(seed: int = 0, shape: tuple[int, int, int] = (32, 28, 24)) -> tio.Subject:
    rng = np.random.default_rng(seed)
    data = (
        ndimage.gaussian_filter(rng.standard_normal((1, *shape)), (0, 2, 2, 2)).astype(np.float32)
        * 100
    )
    labels = np.digitize(data, [-5.0, 0.0, 5.0]).astype(np.int16)
    affine = np.diag([1.0, 1.2, 1.1, 1.0])
    return tio.Subject(
        t=tio.ScalarImage(tensor=torch.from_numpy(data), affine=affine),
        l=tio.LabelMap(tensor=torch.from_numpy(labels), affine=affine),
    )


def test_fused_affine_then_elastic_equals_single_composite_resampling() -> None:
    control_points = np.random.default_rng(1).uniform(-3, 3, (6, 6, 6, 3))
    affine_params = {"scales": (1.1, 0.95, 1.0), "degrees": (4, -6, 10), "translation": (1, 0, -2)}
    elastic_params = {"control_points": control_points, "max_displacement": (3, 3, 3)}
    fused = tio.Compose([tio.Affine(**affine_params), tio.ElasticDeformation(**elastic_params)])(
        subject()
    )
    single = tio.AffineElasticDeformation(True, affine_params, elastic_params)(subject())
    assert torch.equal(fused.t.data, single.t.data)
    assert torch.equal(fused.l.data, single.l.data)
    # And TorchIO's single composite resampling.
    original = subject()
    theirs = torchio.AffineElasticDeformation(True, affine_params, elastic_params)(
        torchio.ScalarImage(tensor=original.t.data.clone(), affine=original.t.affine)
    )
    np.testing.assert_allclose(fused.t.data, theirs.data, atol=1e-4)
    assert [name for name, _ in fused.applied_transforms] == ["Affine", "ElasticDeformation"]


def test_fusion_interpolates_once() -> None:
    # Up and back down with nearest labels / linear intensities: fused is the identity.
    original = subject()
    pipeline = [tio.Resample(0.5), tio.Resample((original.t.spatial_shape, original.t.affine))]
    fused = tio.Compose(pipeline)(original)
    stepwise = tio.Compose(pipeline, fuse=False)(original)
    np.testing.assert_allclose(fused.t.data, original.t.data, atol=1e-4)
    assert torch.equal(fused.l.data, original.l.data)
    assert not torch.allclose(stepwise.t.data, original.t.data, atol=1e-4)
    # Rotating four times by 90 degrees about a non-symmetric centre.
    rotate = tio.Affine(1, (0, 0, 37), 0)
    back = tio.Affine(1, (0, 0, -37), 0)
    fused = tio.Compose([rotate, back])(original)
    stepwise = tio.Compose([rotate, back], fuse=False)(original)
    inner = (slice(None), slice(8, -8), slice(8, -8), slice(None))
    fused_error = (fused.t.data - original.t.data)[inner].abs().max()
    stepwise_error = (stepwise.t.data - original.t.data)[inner].abs().max()
    assert fused_error < 1e-3 < stepwise_error


@pytest.mark.parametrize("spacing", [2.0, 0.8])
def test_elastic_then_resample_evaluates_the_bspline_at_the_new_grid(spacing: float) -> None:
    # SimpleITK's reference: one resampling onto the new grid through the same
    # B-spline transform (evaluated exactly at each target point).
    import SimpleITK as sitk

    control_points = np.random.default_rng(4).uniform(-3, 3, (6, 7, 5, 3))
    original = subject()
    # A minimum of 0: the elastic step then pads as Resample does, so the two fuse.
    original.t.set_data(original.t.data - original.t.data.min())
    fused = tio.Compose([tio.ElasticDeformation(control_points, (3, 3, 3)), tio.Resample(spacing)])(
        original
    )
    source = torchio.ScalarImage(tensor=original.t.data, affine=original.t.affine).as_sitk()
    transform = sitk.BSplineTransformInitializer(source, [n - 3 for n in control_points.shape[:-1]])
    transform.SetParameters(control_points.flatten(order="F").tolist())
    grid = torchio.ScalarImage(tensor=torch.zeros_like(fused.t.data), affine=fused.t.affine)
    reference = sitk.Resample(source, grid.as_sitk(), transform, sitk.sitkLinear, 0.0)
    expected = sitk.GetArrayFromImage(reference).transpose(2, 1, 0)[None]
    np.testing.assert_allclose(fused.t.data.numpy(), expected, atol=2e-3)
    labels = torchio.LabelMap(tensor=original.l.data, affine=original.l.affine).as_sitk()
    reference = sitk.Resample(labels, grid.as_sitk(), transform, sitk.sitkNearestNeighbor, 0)
    expected_labels = sitk.GetArrayFromImage(reference).transpose(2, 1, 0)[None]
    assert (fused.l.data.numpy() != expected_labels).mean() < 1e-3


def test_fused_pipeline_is_close_to_stepwise_and_replays_exactly() -> None:
    def pipeline(fuse: bool) -> tio.Compose:
        return tio.Compose(
            [
                tio.RandomAffine(),
                tio.RandomElasticDeformation(max_displacement=3),
                tio.Resample(1.5),
            ],
            fuse=fuse,
        )

    torch.manual_seed(0)
    fused = pipeline(True)(subject())
    torch.manual_seed(0)
    stepwise = pipeline(False)(subject())
    assert fused.t.shape == stepwise.t.shape
    np.testing.assert_allclose(fused.t.affine, stepwise.t.affine)
    difference = (fused.t.data - stepwise.t.data).abs()
    assert difference.median() < 0.1 * stepwise.t.data.abs().median()
    assert fused.l.data.dtype == torch.int16
    assert set(fused.l.data.unique().tolist()) <= {0, 1, 2, 3}
    names = [name for name, _ in fused.applied_transforms]
    assert names == ["Affine", "ElasticDeformation", "Resample"]
    replayed = fused.get_composed_history()(subject())
    assert torch.equal(replayed.t.data, fused.t.data)
    assert torch.equal(replayed.l.data, fused.l.data)


def test_non_spatial_transforms_break_runs() -> None:
    original = subject()
    pipeline = [
        tio.Affine(1, (0, 0, 10), 0),
        tio.Lambda(lambda x: x * 2, types_to_apply=["intensity"]),
        tio.Resample(2),
    ]
    fused = tio.Compose(pipeline)(original)
    stepwise = tio.Compose(pipeline, fuse=False)(original)
    assert torch.equal(fused.t.data, stepwise.t.data)
    assert torch.equal(fused.l.data, stepwise.l.data)


def test_input_untouched_and_placeholders_never_leak() -> None:
    original = subject()
    before = original.t.data.clone()
    out = tio.Compose([tio.Affine(1.1, 5, 1), tio.Resample(2)])(original)
    assert torch.equal(original.t.data, before)
    for image in out.get_images(intensity_only=False):
        assert image.data.stride()[0] != 0 and image.data.is_contiguous()


@pytest.mark.parametrize("fuse", [True, False])
def test_compose_of_tensor_input(fuse: bool) -> None:
    tensor = torch.rand(1, 20, 20, 20)
    out = tio.Compose([tio.Affine(1, 0, 0), tio.Resample(2)], fuse=fuse)(tensor)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 10, 10, 10)


def _ct_like() -> tio.Subject:
    """A subject whose background is -1000 (as in CT), so that fills of 0 and the minimum differ."""
    original = subject()
    data = original.t.data
    original.t.set_data(torch.where(data > -20, data, torch.tensor(-1000.0)))
    return original


def _torchio_twin(ours: tio.Subject) -> torchio.Subject:
    return torchio.Subject(
        t=torchio.ScalarImage(tensor=ours.t.data.clone(), affine=ours.t.affine),
        l=torchio.LabelMap(tensor=ours.l.data.clone(), affine=ours.l.affine),
    )


def _count_interpolations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from torchvox.transforms.spatial import resample

    calls: list[str] = []
    warp = resample.warp_image

    def counting(image, *args, **kwargs):
        calls.append(type(image).__name__)
        return warp(image, *args, **kwargs)

    monkeypatch.setattr(resample, "warp_image", counting)
    return calls


def test_a_coarser_grid_ends_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulating a thick-slice acquisition, then going back to the original
    # grid: the detail lost on the coarse grid must stay lost, as in TorchIO.
    original = subject()
    calls = _count_interpolations(monkeypatch)
    pipeline = [
        tio.Resample((1, 1.2, 4.7), image_interpolation="nearest"),
        tio.Resample((original.t.spatial_shape, original.t.affine)),
    ]
    ours = tio.Compose(pipeline)(original)
    assert len(calls) == 4  # each image on each grid
    theirs = torchio.Compose(
        [
            torchio.Resample((1, 1.2, 4.7), image_interpolation="nearest"),
            torchio.Resample((original.t.spatial_shape, original.t.affine)),
        ]
    )(_torchio_twin(original))
    assert (ours.t.data - original.t.data).abs().max() > 10
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=1e-3)
    np.testing.assert_array_equal(ours.l.data, theirs.l.data.to(ours.l.data.dtype))


def test_other_fill_values_are_not_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Resample pads with 0, Affine with the image minimum (-1000): the affine
    # step must pad with -1000 where its own points leave the volume.
    original = _ct_like()
    calls = _count_interpolations(monkeypatch)
    shift = {"scales": 1, "degrees": 0, "translation": (6, 0, 0)}
    ours = tio.Compose([tio.Resample(0.9), tio.Affine(**shift)])(original)
    # The label map pads with 0 in both steps: it still takes one interpolation.
    assert sorted(calls) == ["LabelMap", "ScalarImage", "ScalarImage"]
    theirs = torchio.Compose([torchio.Resample(0.9), torchio.Affine(**shift)])(
        _torchio_twin(original)
    )
    assert (theirs.t.data == -1000).any()
    np.testing.assert_allclose(ours.t.data, theirs.t.data, atol=2e-3)


def test_another_interpolation_is_not_merged() -> None:
    original = subject()
    rotate = {"scales": 1, "degrees": (0, 0, 20), "translation": 0}
    pipeline = [tio.Affine(**rotate, image_interpolation="nearest"), tio.Affine(**rotate)]
    fused = tio.Compose(pipeline)(original)
    stepwise = tio.Compose(pipeline, fuse=False)(original)
    assert torch.equal(fused.t.data, stepwise.t.data)
    # Same interpolations and fills still fuse (the label map above, and here).
    same = [tio.Affine(**rotate), tio.Affine(**rotate)]
    assert not torch.equal(
        tio.Compose(same)(original).t.data, tio.Compose(same, fuse=False)(original).t.data
    )


def test_history_of_separate_transforms_replays_through_a_coarser_grid() -> None:
    torch.manual_seed(3)
    original = subject()
    resampled = tio.Resample(1.7)(original)
    augmented = tio.RandomAffine(degrees=20)(resampled)
    replayed = augmented.get_composed_history()(original)
    assert torch.equal(replayed.t.data, augmented.t.data)
    assert torch.equal(replayed.l.data, augmented.l.data)


def test_benchmark_pipeline_still_interpolates_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # RandomAffine and RandomElasticDeformation pad with the minimum (0 here),
    # Resample with 0; its coarser grid comes last.
    original = subject()
    original.t.set_data(original.t.data - original.t.data.min())
    calls = _count_interpolations(monkeypatch)
    tio.Compose(
        [tio.RandomAffine(), tio.RandomElasticDeformation(max_displacement=3), tio.Resample(1.5)]
    )(original)
    assert sorted(calls) == ["LabelMap", "ScalarImage"]


def test_history_replays_resample_as_the_subject_was_resampled() -> None:
    # Transforms applied one by one replay one by one; those a fusing Compose
    # interpolated together replay fused; a mix replays as it was.
    original = subject()
    rotate = tio.Affine(1, (0, 0, 20), 0)
    zoom = tio.Affine(1.1, (10, 0, 0), 0)
    shift = tio.Affine(0.9, 0, 2)
    separate = zoom(rotate(original))
    fused = tio.Compose([rotate, zoom])(original)
    mixed = shift(tio.Compose([rotate, zoom])(original))
    assert not torch.equal(separate.t.data, fused.t.data)
    for result, fuse in ((separate, False), (fused, True), (mixed, False)):
        history = result.get_composed_history()
        assert history.fuse is fuse
        replayed = history(original)
        assert torch.equal(replayed.t.data, result.t.data)
        assert torch.equal(replayed.l.data, result.l.data)
    nested = mixed.get_composed_history().transforms
    assert [type(child).__name__ for child in nested] == ["Compose", "Affine"]
    # A history edited by hand has lost the record: it replays fused, as before.
    separate.applied_transforms.append(separate.applied_transforms[-1])
    assert separate.get_composed_history().fuse is True
    separate.clear_history()
    assert separate.get_composed_history().fuse is False
