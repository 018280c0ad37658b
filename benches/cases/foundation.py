"""Issue 2: loading, normalisation, flips, crop/pad and reorientation."""

from __future__ import annotations

from ..data import Volume, as_las
from ..harness import Case
from .common import monai_image, transform_pair

#: Case name -> {library: minimum ratio (their time / torchvox time)}, from issues 2 and 5.
TARGETS: dict[str, dict[str, float]] = {
    "load T1 .nii.gz (float32)": {"torchio": 2.5, "monai": 1.0, "medrs": 1.0},
    "ZNormalization": {"torchio": 5.0, "monai": 2.0},
    "RescaleIntensity percentiles (0.5, 99.5)": {"torchio": 5.0, "monai": 2.0},
    "Flip axis 0 (T1 + labels)": {"torchio": 3.0, "monai": 3.0},
    "CropOrPad 160^3 (T1 + labels)": {"torchio": 1.0, "monai": 1.0},
    "ToCanonical (T1 + labels)": {"torchio": 1.0, "monai": 1.0},
}


def _loading(volume: Volume) -> Case:
    import torchio

    import torchvox

    path = str(volume.t1_nii_gz)
    runners = {
        "torchio": lambda: torchio.ScalarImage(path).load(),
        "torchvox": lambda: torchvox.ScalarImage(path).load(),
    }
    try:
        from monai.transforms import LoadImage

        loader = LoadImage(image_only=True)
        runners["monai"] = lambda: loader(path)
    except ImportError:
        pass
    try:
        import medrs

        runners["medrs"] = lambda: medrs.load_to_torch(path)
    except ImportError:
        pass
    return Case("load T1 .nii.gz (float32)", volume.name, runners)


def cases(volume: Volume) -> list[Case]:
    from monai import transforms as monai

    image = monai_image(volume)
    las = as_las(volume)

    znorm = transform_pair(volume, "ZNormalization", with_labels=False)
    znorm["monai"] = lambda: monai.NormalizeIntensity()(image)

    rescale = transform_pair(
        volume, "RescaleIntensity", out_min_max=(0, 1), percentiles=(0.5, 99.5), with_labels=False
    )
    rescale["monai"] = lambda: monai.ScaleIntensityRangePercentiles(0.5, 99.5, 0, 1, clip=True)(
        image
    )

    flip = transform_pair(volume, "Flip", axes=(0,))
    flip["monai"] = lambda: monai.Flip(spatial_axis=0)(image)

    crop_or_pad = transform_pair(volume, "CropOrPad", 160)
    crop_or_pad["monai"] = lambda: monai.ResizeWithPadOrCrop((160, 160, 160))(image)

    # Reorientation needs a non-RAS input: the same volume stored as LAS.
    canonical = transform_pair(las, "ToCanonical")
    las_image = monai_image(las)
    canonical["monai"] = lambda: monai.Orientation("RAS")(las_image)
    return [
        _loading(volume),
        Case("ZNormalization", volume.name, znorm),
        Case("RescaleIntensity percentiles (0.5, 99.5)", volume.name, rescale),
        Case("Flip axis 0 (T1 + labels)", volume.name, flip, note="MONAI: T1 only"),
        Case("CropOrPad 160^3 (T1 + labels)", volume.name, crop_or_pad, note="MONAI: T1 only"),
        Case("ToCanonical (T1 + labels)", las.name, canonical, note="MONAI: T1 only, LAS input"),
    ]
