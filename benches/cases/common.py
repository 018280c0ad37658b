"""Builders shared by the case modules: the same input for every library."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..data import Volume


def torchio_subject(volume: Volume, with_labels: bool = True):
    """A loaded TorchIO Subject holding the volume (and its labels)."""
    import torchio

    images = {"t1": torchio.ScalarImage(tensor=torch.from_numpy(volume.t1), affine=volume.affine)}
    if with_labels:
        images["tissues"] = torchio.LabelMap(
            tensor=torch.from_numpy(volume.labels), affine=volume.affine
        )
    return torchio.Subject(images)


def torchvox_subject(volume: Volume, with_labels: bool = True):
    """A loaded torchvox Subject holding the volume (and its labels)."""
    import torchvox

    images = {"t1": torchvox.ScalarImage(tensor=torch.from_numpy(volume.t1), affine=volume.affine)}
    if with_labels:
        images["tissues"] = torchvox.LabelMap(
            tensor=torch.from_numpy(volume.labels), affine=volume.affine
        )
    return torchvox.Subject(images)


def monai_image(volume: Volume):
    """A MONAI MetaTensor of the T1 with its affine (channel first)."""
    from monai.data import MetaTensor

    return MetaTensor(torch.from_numpy(volume.t1.copy()), affine=torch.from_numpy(volume.affine))


def transform_pair(
    volume: Volume, name: str, *args, with_labels: bool = True, **kwargs
) -> dict[str, Callable[[], object]]:
    """Runners applying the transform ``name`` of both TorchIO and torchvox to a Subject."""
    import torchio

    import torchvox

    runners: dict[str, Callable[[], object]] = {}
    theirs = getattr(torchio, name)(*args, **kwargs)
    their_subject = torchio_subject(volume, with_labels)
    runners["torchio"] = lambda: theirs(their_subject)
    if hasattr(torchvox, name):
        ours = getattr(torchvox, name)(*args, **kwargs)
        our_subject = torchvox_subject(volume, with_labels)
        runners["torchvox"] = lambda: ours(our_subject)
    return runners
