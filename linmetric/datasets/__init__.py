"""Data sets for metric learning benchmarks.

MNIST is read from a local cache of IDX files (fetched and verified on first
use), Fashion-MNIST from the Debian package's files or the same cache, and
:func:`deskew` applies the second-moment shear used in the classical MNIST
protocols. The cache directory is ``$LINMETRIC_DATA`` when set, else
``~/.cache/linmetric``; see :func:`get_data_home`.
"""

from ._deskew import deskew
from ._idx import read_idx, write_idx
from ._mnist import get_data_home, load_fashion_mnist, load_mnist

__all__ = [
    "deskew",
    "get_data_home",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "write_idx",
]
