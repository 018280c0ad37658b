"""Issue 5: crop-first reading, samplers, grid aggregation and the Queue."""

from __future__ import annotations

import itertools

import torch

from ..data import Volume
from ..harness import Case
from .common import torchio_subject, torchvox_subject

#: Case name -> {library: minimum ratio (their time / torchvox time)}, from issue 5.
TARGETS: dict[str, dict[str, float]] = {
    "crop-first read 96^3 from .nii": {"medrs": 1.0},
    "LabelSampler 10 patches": {"torchio": 5.0, "monai": 2.0},
    "GridSampler + GridAggregator crop": {"torchio": 3.0},
    "GridSampler + GridAggregator average": {"torchio": 3.0},
    "GridSampler + GridAggregator hann": {"torchio": 3.0},
    "Queue num_workers=0": {"torchio": 8.0},
    "Queue num_workers=2": {"torchio": 8.0},
    "Queue LabelSampler num_workers=0": {"torchio": 8.0},
    "Queue LabelSampler num_workers=2": {"torchio": 8.0},
}

PATCH = 96
START = (50, 60, 40)
NUM_SUBJECTS = 8
SAMPLES_PER_VOLUME = 10
EPOCHS = 2


def _crop_first(volume: Volume) -> Case:
    import torchio

    from torchvox.data.nifti import read_nifti_region

    path = str(volume.t1_nii)
    size = (PATCH,) * 3
    runners = {
        # TorchIO has no crop-first read: it loads the volume, then slices.
        "torchio": lambda: torchio.ScalarImage(path).load(),
        "torchvox": lambda: read_nifti_region(path, START, size),
    }
    try:
        import medrs

        runners["medrs"] = lambda: medrs.load_cropped(path, list(START), list(size))
    except ImportError:
        pass
    return Case(
        "crop-first read 96^3 from .nii",
        volume.name,
        runners,
        # A millisecond-scale read: enough repetitions that a burst of noise on
        # a shared machine does not move the median (TorchIO's load sets the cost).
        repeats=30,
        note="TorchIO: whole-volume load (no crop-first read)",
    )


def _label_sampler(volume: Volume) -> Case:
    import torchio

    import torchvox

    their_subject, our_subject = torchio_subject(volume), torchvox_subject(volume)
    theirs = torchio.LabelSampler(PATCH, "tissues")
    ours = torchvox.LabelSampler(PATCH, "tissues")
    runners = {
        "torchio": lambda: list(itertools.islice(theirs(their_subject), SAMPLES_PER_VOLUME)),
        "torchvox": lambda: list(itertools.islice(ours(our_subject), SAMPLES_PER_VOLUME)),
    }
    from monai.data import MetaTensor
    from monai.transforms import RandCropByPosNegLabel

    image = MetaTensor(torch.from_numpy(volume.t1.copy()))
    label = MetaTensor(torch.from_numpy(volume.labels.copy()))
    crop = RandCropByPosNegLabel((PATCH,) * 3, label=label, num_samples=SAMPLES_PER_VOLUME)
    runners["monai"] = lambda: crop(image)
    return Case(
        "LabelSampler 10 patches",
        volume.name,
        runners,
        note="96^3 from T1 + tissues; MONAI RandCropByPosNegLabel on T1",
    )


def _grid(volume: Volume, mode: str) -> Case:
    import torchio

    import torchvox

    def runner(library, subject):
        def run():
            sampler = library.GridSampler(subject, PATCH, 16)
            aggregator = library.GridAggregator(sampler, overlap_mode=mode)
            loader = library.SubjectsLoader(sampler, batch_size=4)
            for batch in loader:
                # Identity model: the patches go back unchanged.
                aggregator.add_batch(batch["t1"][library.DATA], batch[library.LOCATION])
            return aggregator.get_output_tensor()

        return run

    runners = {
        "torchio": runner(torchio, torchio_subject(volume, with_labels=False)),
        "torchvox": runner(torchvox, torchvox_subject(volume, with_labels=False)),
    }
    return Case(
        f"GridSampler + GridAggregator {mode}",
        volume.name,
        runners,
        # A pass takes tens of milliseconds: a median of 9 keeps a burst of
        # noise on a shared machine out of the figure, at little cost.
        repeats=9,
        note="patch 96, overlap 16, batch 4, identity model",
    )


def _queue(volume: Volume, num_workers: int, label_sampler: bool = False) -> Case:
    """The issue's Queue pipeline: 8 subjects read from .nii.gz, augmented, sampled.

    With ``label_sampler``, each subject also has the tissue label map, and the
    patches are centred on tissue voxels (the LabelSampler's default: any
    non-zero label).
    """
    import torchio

    import torchvox

    def runner(library):
        def subject():
            images = {"t1": library.ScalarImage(volume.t1_nii_gz)}
            if label_sampler:
                images["tissues"] = library.LabelMap(volume.labels_nii_gz)
            return library.Subject(**images)

        subjects = [subject() for _ in range(NUM_SUBJECTS)]
        transform = library.Compose([library.RandomAffine(), library.RandomNoise()])
        dataset = library.SubjectsDataset(subjects, transform=transform)
        if label_sampler:
            sampler = library.LabelSampler(PATCH, "tissues")
        else:
            sampler = library.UniformSampler(PATCH)

        def run():
            queue = library.Queue(
                dataset,
                max_length=40,
                samples_per_volume=SAMPLES_PER_VOLUME,
                sampler=sampler,
                num_workers=num_workers,
            )
            loader = library.SubjectsLoader(queue, batch_size=4, num_workers=0)
            for _ in range(EPOCHS):
                for _batch in loader:
                    pass

        return run

    kind = "LabelSampler" if label_sampler else "UniformSampler"
    images = "T1 + tissues" if label_sampler else "T1"
    return Case(
        f"Queue {'LabelSampler ' if label_sampler else ''}num_workers={num_workers}",
        volume.name,
        {"torchio": runner(torchio), "torchvox": runner(torchvox)},
        # Seconds per run: a median of 3 rather than a single sample, so that
        # a burst of noise on a shared machine decides neither library's figure.
        repeats=3,
        items=NUM_SUBJECTS * SAMPLES_PER_VOLUME * EPOCHS,
        note=f"ms per patch; 8 subjects ({images}, .nii.gz), RandomAffine + RandomNoise, "
        f"{kind}(96), 10 per volume, max_length 40, 2 epochs",
    )


def cases(volume: Volume) -> list[Case]:
    if volume.name.startswith("phantom"):
        return []  # MNI152 only, to keep `make bench` bounded
    return [
        _crop_first(volume),
        _label_sampler(volume),
        *(_grid(volume, mode) for mode in ("crop", "average", "hann")),
        *(_queue(volume, workers) for workers in (0, 2)),
        *(_queue(volume, workers, label_sampler=True) for workers in (0, 2)),
    ]
