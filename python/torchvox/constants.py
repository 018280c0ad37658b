"""Names shared across torchvox, identical to TorchIO's constants.

``from torchvox.constants import *`` (as the top-level package does) exposes every
upper-case name here, so ``tio.DATA``, ``tio.AFFINE``, ``tio.INTENSITY``... work as
in TorchIO.
"""

import torch

# Image types: they decide which transforms touch an image and how it is resampled.
INTENSITY = "intensity"
LABEL = "label"
SAMPLING_MAP = "sampling_map"

# Keys of the image dictionaries (and of the batches made by SubjectsLoader).
PATH = "path"
TYPE = "type"
STEM = "stem"
DATA = "data"
AFFINE = "affine"
TENSOR = "tensor"

# Keys used by the patch aggregator.
IMAGE = "image"
LOCATION = "location"

# Key under which history_collate stores the applied transforms.
HISTORY = "history"

# Batches are (B, C, W, H, D): the channels are the second dimension.
CHANNELS_DIMENSION = 1

REPO_URL = "https://github.com/TorchIO-project/torchio/"
DATA_REPO = "https://github.com/TorchIO-project/torchio-data/raw/main/data/"

# Machine epsilon of float32, used to avoid divisions by zero.
MIN_FLOAT_32 = torch.finfo(torch.float32).eps

# Subject attribute that overrides the number of patches a Queue draws from it.
NUM_SAMPLES = "num_samples"
