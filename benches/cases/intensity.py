"""Issue 4: intensity transforms and MRI k-space artefacts."""

from __future__ import annotations

import math

from ..data import Volume
from ..harness import Case
from .common import monai_image, transform_pair

#: Case name -> {library: minimum ratio (their time / torchvox time)}, from issue 4.
TARGETS: dict[str, dict[str, float]] = {
    "RandomMotion": {"torchio": 10.0},
    "RandomGhosting": {"torchio": 10.0},
    "RandomSpike": {"torchio": 20.0, "monai": 1.0},
    "RandomBiasField": {"torchio": 30.0, "monai": 3.0},
    "RandomBlur": {"torchio": 3.0, "monai": 1.0},
    "RandomNoise": {"torchio": 3.0, "monai": 1.0},
    "RandomGamma": {"torchio": 3.0, "monai": 1.0},
    "RandomSwap": {"torchio": 3.0},
    "RandomLabelsToImage": {"torchio": 10.0},
    "HistogramStandardization": {"torchio": 5.0},
}


def _histogram_standardization(volume: Volume) -> Case:
    import torchio

    import torchvox

    # Landmarks are trained once, outside the timed call, on the volume itself.
    paths = [str(volume.t1_nii_gz)]
    their_landmarks = {"t1": torchio.HistogramStandardization.train(paths)}
    our_landmarks = {"t1": torchvox.HistogramStandardization.train(paths)}
    runners = transform_pair(volume, "HistogramStandardization", their_landmarks)
    if "torchvox" in runners:
        runners["torchvox"] = transform_pair(volume, "HistogramStandardization", our_landmarks)[
            "torchvox"
        ]
    return Case("HistogramStandardization", volume.name, runners, repeats=5, note="T1 + labels")


def cases(volume: Volume) -> list[Case]:
    from monai import transforms as monai

    image = monai_image(volume)

    bias = transform_pair(volume, "RandomBiasField")
    # TorchIO's defaults: order 3, coefficients in (-0.5, 0.5).
    monai_bias = monai.RandBiasField(degree=3, coeff_range=(-0.5, 0.5), prob=1.0)
    bias["monai"] = lambda: monai_bias(image)
    if volume.name.startswith("phantom"):
        # The 256^3 input only gets the key cases, to keep `make bench` bounded.
        return [Case("RandomBiasField", volume.name, bias, repeats=1, note="T1 + labels")]

    motion = transform_pair(volume, "RandomMotion")
    ghosting = transform_pair(volume, "RandomGhosting")
    spike = transform_pair(volume, "RandomSpike")
    monai_spike = monai.RandKSpaceSpikeNoise(prob=1.0)
    spike["monai"] = lambda: monai_spike(image)

    # TorchIO's default std is drawn in (0, 2) mm; MONAI's sigma in voxels (1 mm here).
    blur = transform_pair(volume, "RandomBlur")
    monai_blur = monai.RandGaussianSmooth(sigma_x=(0, 2), sigma_y=(0, 2), sigma_z=(0, 2), prob=1.0)
    blur["monai"] = lambda: monai_blur(image)

    noise = transform_pair(volume, "RandomNoise")
    monai_noise = monai.RandGaussianNoise(prob=1.0, std=0.25)
    noise["monai"] = lambda: monai_noise(image)

    # TorchIO draws log(gamma) in (-0.3, 0.3).
    gamma = transform_pair(volume, "RandomGamma")
    monai_gamma = monai.RandAdjustContrast(prob=1.0, gamma=(math.exp(-0.3), math.exp(0.3)))
    gamma["monai"] = lambda: monai_gamma(image)

    swap = transform_pair(volume, "RandomSwap")
    labels_to_image = transform_pair(volume, "RandomLabelsToImage", label_key="tissues")

    return [
        Case("RandomMotion", volume.name, motion, repeats=2, note="T1 + labels"),
        Case("RandomGhosting", volume.name, ghosting, repeats=3, note="T1 + labels"),
        Case(
            "RandomSpike",
            volume.name,
            spike,
            repeats=3,
            note="T1 + labels; MONAI RandKSpaceSpikeNoise: T1",
        ),
        Case("RandomBiasField", volume.name, bias, repeats=1, note="T1 + labels; MONAI: T1"),
        Case("RandomBlur", volume.name, blur, repeats=3, note="T1 + labels; MONAI: T1"),
        Case("RandomNoise", volume.name, noise, note="T1 + labels; MONAI: T1"),
        Case("RandomGamma", volume.name, gamma, note="T1 + labels; MONAI RandAdjustContrast: T1"),
        Case("RandomSwap", volume.name, swap, note="T1 + labels"),
        Case("RandomLabelsToImage", volume.name, labels_to_image, repeats=3, note="from tissues"),
        _histogram_standardization(volume),
    ]
