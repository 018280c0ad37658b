"""Datasets: built-in subjects (MNI152, Phantom, ZonePlate), TorchIO's dataset classes
(read from local folders, downloaded where the source is reachable) and a loader for
Medical Segmentation Decathlon / nnU-Net raw folders."""

from .bite import BITE3
from .ct_rate import CtRate
from .decathlon import DecathlonDataset
from .download import DatasetNotFoundError
from .episurg import EPISURG
from .ixi import IXI, IXITiny
from .medmnist import (
    AdrenalMNIST3D,
    FractureMNIST3D,
    MedMNIST,
    NoduleMNIST3D,
    OrganMNIST3D,
    SynapseMNIST3D,
    VesselMNIST3D,
)
from .mni import MNI152
from .phantom import Phantom
from .rsna_miccai import RSNAMICCAI
from .rsna_spine_fracture import RSNACervicalSpineFracture
from .templates import (
    FPG,
    T1T2,
    AorticValve,
    BrainTumor,
    Colin27,
    ICBM2009CNonlinearSymmetric,
    Pediatric,
    Sheep,
    Slicer,
)
from .zone_plate import ZonePlate

__all__ = [
    "BITE3",
    "EPISURG",
    "FPG",
    "IXI",
    "MNI152",
    "RSNAMICCAI",
    "T1T2",
    "AdrenalMNIST3D",
    "AorticValve",
    "BrainTumor",
    "Colin27",
    "CtRate",
    "DatasetNotFoundError",
    "DecathlonDataset",
    "FractureMNIST3D",
    "ICBM2009CNonlinearSymmetric",
    "IXITiny",
    "MedMNIST",
    "NoduleMNIST3D",
    "OrganMNIST3D",
    "Pediatric",
    "Phantom",
    "RSNACervicalSpineFracture",
    "Sheep",
    "Slicer",
    "SynapseMNIST3D",
    "VesselMNIST3D",
    "ZonePlate",
]
