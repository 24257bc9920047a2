"""numba kernels for the learners' hot paths.

Plain arrays in and out (C-contiguous float32 or float64), no estimators, no
``n x n`` arrays: memory is bounded by the ``working_memory`` byte budget.
Dense products go through BLAS; numba fuses what BLAS cannot (norms,
clamping, top-k selection, radius filtering, sparse accumulation). Kernels
compile on their first call, never at import.

Every numba kernel here is serial, cached on disk (``_config.jit``) and
releases the GIL; the Python wrappers split rows over threads
(``numba.get_num_threads()`` of them, see ``_chunking.run_on_row_ranges``),
so the kernels use every core and still compile only once per machine.
Results do not depend on the number of threads, except where a docstring
says otherwise.

Module map: ``distances`` (blocked squared distances, exact pair
distances), ``neighbors`` (target neighbours), ``impostors`` (impostor
search and candidate recheck, pair sorting), ``outer`` (weighted
outer-product sums), ``_chunking`` (byte budget, threads).
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
