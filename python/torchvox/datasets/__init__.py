"""Built-in subjects: the MNI ICBM152 2009a template and a synthetic head phantom."""

from .mni import MNI152
from .phantom import Phantom

__all__ = ["MNI152", "Phantom"]
