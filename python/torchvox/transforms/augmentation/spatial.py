"""TorchIO's ``torchio.transforms.augmentation.spatial`` import path."""

from ..spatial import Flip, RandomFlip
from ..spatial.affine import Affine, RandomAffine
from ..spatial.affine_elastic import AffineElasticDeformation, RandomAffineElasticDeformation
from ..spatial.anisotropy import RandomAnisotropy
from ..spatial.elastic import ElasticDeformation, RandomElasticDeformation

__all__ = [
    "Affine",
    "AffineElasticDeformation",
    "ElasticDeformation",
    "Flip",
    "RandomAffine",
    "RandomAffineElasticDeformation",
    "RandomAnisotropy",
    "RandomElasticDeformation",
    "RandomFlip",
]
