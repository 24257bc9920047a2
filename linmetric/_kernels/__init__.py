"""numba kernels for the learners' hot paths.

Plain arrays in and out (C-contiguous float32 or float64), no estimators, no
``n x n`` arrays: memory is bounded by the ``working_memory`` byte budget.
Dense products go through BLAS; numba fuses what BLAS cannot (norms,
clamping, top-k selection, radius filtering, sparse accumulation). Kernels
compile on their first call, never at import.
"""

from ._chunking import rows_per_chunk
from .distances import (
    pairwise_sq_distances,
    row_norms_sq,
    sq_distance_blocks,
    sq_distances_of_pairs,
)
from .impostors import find_impostors, recheck_impostors, sort_pairs
from .neighbors import target_neighbors
from .outer import weighted_outer_sum

__all__ = [
    "find_impostors",
    "pairwise_sq_distances",
    "recheck_impostors",
    "row_norms_sq",
    "rows_per_chunk",
    "sort_pairs",
    "sq_distance_blocks",
    "sq_distances_of_pairs",
    "target_neighbors",
    "weighted_outer_sum",
]
