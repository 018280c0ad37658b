"""A preprocessing pipeline on the MNI152 template, torchvox against TorchIO 1.2.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transform_helpers import assert_same_subject, torchio

pytestmark = [pytest.mark.slow, pytest.mark.reference]


def _pipeline(module):
    return module.Compose(
        [
            module.ToOrientation("LPI"),
            module.RandomFlip(("LR", "AP"), flip_probability=0.5),
            module.CropOrPad((160, 192, 150), mask_name="tissues"),
            module.Pad((3, 0, 2, 1, 0, 4), padding_mode="edge"),
            module.Crop((0, 2, 1, 0, 3, 0)),
            module.Clamp(10, 240),
            module.Mask("tissues", labels=[1, 2]),
            module.ZNormalization(masking_method="tissues"),
            module.RescaleIntensity((-1, 1), percentiles=(0.5, 99.5)),
            module.EnsureShapeMultiple(16),
            module.ToCanonical(),
        ]
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_mni_pipeline_matches_torchio(mni152, seed):
    ours_subject = mni152
    theirs_subject = torchio.Subject(
        t1=torchio.ScalarImage(mni152["t1"].path),
        # From memory: the tissue map has no file when the cache could not be written.
        tissues=torchio.LabelMap(
            tensor=mni152["tissues"].data.clone(), affine=mni152["tissues"].affine
        ),
    )
    torch.manual_seed(seed)
    theirs = _pipeline(torchio)(theirs_subject)
    torch.manual_seed(seed)
    ours = _pipeline(__import__("torchvox"))(ours_subject)
    assert_same_subject(ours, theirs, exact=False, rtol=1e-5)
    assert [n for n, _ in ours.applied_transforms] == [n for n, _ in theirs.applied_transforms]
    for (name, our_args), (_, their_args) in zip(
        ours.applied_transforms, theirs.applied_transforms
    ):
        if name == "Mask":
            # torchvox also records outside_value and labels so Mask replays exactly.
            assert our_args == {**their_args, "outside_value": 0, "labels": [1, 2]}
        else:
            assert our_args == their_args
    replayed = ours.get_composed_history()(mni152)
    assert torch.equal(replayed["t1"].data, ours["t1"].data)
    assert np.isclose(float(ours["t1"].data.min()), -1)
