"""Issue 4: label-map transforms."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..data import Volume
from ..harness import Case
from .common import transform_pair

#: Case name -> {library: minimum ratio (their time / torchvox time)}, from issue 4.
TARGETS: dict[str, dict[str, float]] = {
    "OneHot": {"torchio": 5.0, "monai": 1.0},
    "KeepLargestComponent": {"torchio": 2.0, "monai": 1.0},
    "Contour": {"torchio": 2.0, "monai": 1.0},
}


def _monai_labels(labels: np.ndarray):
    from monai.data import MetaTensor

    return MetaTensor(torch.from_numpy(labels.copy()))


def cases(volume: Volume) -> list[Case]:
    if volume.name.startswith("phantom"):
        return []  # label transforms are cheap; MNI152 is enough
    from monai import transforms as monai

    labels = _monai_labels(volume.labels)
    one_hot = transform_pair(volume, "OneHot", with_labels=True)
    to_one_hot = monai.AsDiscrete(to_onehot=3)
    one_hot["monai"] = lambda: to_one_hot(labels)

    # TorchIO's KeepLargestComponent and Contour take binary maps: white matter.
    binary = replace(volume, labels=(volume.labels == 2).astype(np.uint8))
    binary_labels = _monai_labels(binary.labels)
    largest = transform_pair(binary, "KeepLargestComponent")
    keep_largest = monai.KeepLargestConnectedComponent(applied_labels=[1])
    try:
        import skimage  # noqa: F401  (MONAI's CPU connected components need it)

        largest["monai"] = lambda: keep_largest(binary_labels)
    except ImportError:
        pass
    contour = transform_pair(binary, "Contour")
    to_contour = monai.LabelToContour()
    # LabelToContour convolves, so it needs a floating-point input.
    float_labels = _monai_labels(binary.labels.astype(np.float32))
    contour["monai"] = lambda: to_contour(float_labels)

    remap = transform_pair(volume, "RemapLabels", {1: 2, 2: 1})
    # Labels 0, 5, 10 so that SequentialLabels has work to do.
    spread = replace(volume, labels=(volume.labels * 5).astype(np.uint8))
    sequential = transform_pair(spread, "SequentialLabels")
    return [
        Case("OneHot", volume.name, one_hot, note="tissues (3 classes); MONAI AsDiscrete"),
        Case(
            "KeepLargestComponent",
            volume.name,
            largest,
            note="tissues == 2 (WM); MONAI's needs scikit-image (absent)",
        ),
        Case("Contour", volume.name, contour, note="tissues == 2; MONAI LabelToContour"),
        Case("RemapLabels {1: 2, 2: 1}", volume.name, remap, note="T1 + tissues"),
        Case("SequentialLabels", volume.name, sequential, note="labels 0, 5, 10"),
    ]
