"""Issue 3: resampling, affine and elastic transforms, anisotropy and fused Compose."""

from __future__ import annotations

import math

from ..data import Volume
from ..harness import Case
from .common import monai_image, torchio_subject, torchvox_subject, transform_pair

#: Case name -> {library: minimum ratio (their time / torchvox time)}, from issue 3.
TARGETS: dict[str, dict[str, float]] = {
    "RandomAffine": {"torchio": 10.0, "monai": 1.0},
    "RandomElasticDeformation": {"torchio": 40.0, "monai": 1.0},
    "RandomAffineElasticDeformation": {"torchio": 40.0},
    "Resample 0.75 mm": {"torchio": 5.0, "monai": 1.0, "medrs": 2.0},
    "Resample 2 mm": {"torchio": 5.0, "monai": 1.0, "medrs": 2.0},
    "RandomAnisotropy": {"torchio": 5.0, "monai": 2.0},
    "Compose(RandomAffine, RandomElasticDeformation, Resample(1.5))": {"torchio": 40.0},
}


def _resample(volume: Volume, spacing: float, repeats: int) -> Case:
    from monai import transforms as monai

    runners = transform_pair(volume, "Resample", spacing)
    image = monai_image(volume)
    spacing_transform = monai.Spacing(pixdim=(spacing,) * 3, mode="bilinear")
    runners["monai"] = lambda: spacing_transform(image)
    try:
        import medrs

        medrs_image = medrs.load(str(volume.t1_nii_gz))
        runners["medrs"] = lambda: medrs.resample(medrs_image, (spacing,) * 3)
    except ImportError:
        pass
    return Case(
        f"Resample {spacing:g} mm",
        volume.name,
        runners,
        repeats=repeats,
        note="T1 + labels; MONAI Spacing and medrs: T1 only",
    )


def _compose(volume: Volume) -> Case:
    import torchio

    import torchvox

    def build(library):
        return library.Compose(
            [library.RandomAffine(), library.RandomElasticDeformation(), library.Resample(1.5)]
        )

    theirs, ours = build(torchio), build(torchvox)
    their_subject, our_subject = torchio_subject(volume), torchvox_subject(volume)
    runners = {"torchio": lambda: theirs(their_subject), "torchvox": lambda: ours(our_subject)}
    return Case(
        "Compose(RandomAffine, RandomElasticDeformation, Resample(1.5))",
        volume.name,
        runners,
        repeats=1,
        note="T1 + labels; torchvox fuses the three into one resampling",
    )


def cases(volume: Volume) -> list[Case]:
    from monai import transforms as monai

    image = monai_image(volume)
    if volume.name.startswith("phantom"):
        # The 256^3 input only gets the key cases, to keep `make bench` bounded.
        affine = transform_pair(volume, "RandomAffine")
        return [
            Case("RandomAffine", volume.name, affine, repeats=2, note="T1 + labels"),
            _resample(volume, 0.75, repeats=1),
            _resample(volume, 2, repeats=2),
        ]

    # TorchIO's defaults: scales 0.1, degrees 10, no translation, linear interpolation.
    affine = transform_pair(volume, "RandomAffine")
    monai_affine = monai.RandAffine(
        prob=1.0,
        rotate_range=(math.radians(10),) * 3,
        scale_range=(0.1,) * 3,
        mode="bilinear",
        padding_mode="zeros",
    )
    affine["monai"] = lambda: monai_affine(image)

    # TorchIO's defaults: 7 control points, 7.5 mm maximum displacement. MONAI's
    # elastic smooths a dense random field instead; the closest default use is shown.
    elastic = transform_pair(volume, "RandomElasticDeformation")
    monai_elastic = monai.Rand3DElastic(
        sigma_range=(5, 7), magnitude_range=(50, 150), prob=1.0, mode="bilinear"
    )
    elastic["monai"] = lambda: monai_elastic(image)

    affine_elastic = transform_pair(volume, "RandomAffineElasticDeformation")

    anisotropy = transform_pair(volume, "RandomAnisotropy")
    monai_anisotropy = monai.RandSimulateLowResolution(prob=1.0, zoom_range=(0.2, 0.67))
    anisotropy["monai"] = lambda: monai_anisotropy(image)

    return [
        Case("RandomAffine", volume.name, affine, repeats=5, note="T1 + labels; MONAI: T1 only"),
        Case(
            "RandomElasticDeformation",
            volume.name,
            elastic,
            repeats=1,
            note="T1 + labels; MONAI Rand3DElastic (dense smoothed field): T1 only",
        ),
        Case(
            "RandomAffineElasticDeformation",
            volume.name,
            affine_elastic,
            repeats=1,
            note="T1 + labels",
        ),
        _resample(volume, 0.75, repeats=2),
        _resample(volume, 2, repeats=3),
        Case(
            "RandomAnisotropy",
            volume.name,
            anisotropy,
            repeats=3,
            note="T1 + labels; MONAI RandSimulateLowResolution: T1 only",
        ),
        _compose(volume),
    ]
