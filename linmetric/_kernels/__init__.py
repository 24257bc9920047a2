"""numba kernels for the learners' hot paths.

Plain arrays in and out (C-contiguous float32 or float64), no estimators, no
``n x n`` arrays: memory is bounded by the ``working_memory`` byte budget.
Dense products go through BLAS; numba fuses what BLAS cannot (norms,
clamping, top-k selection, radius filtering, sparse accumulation). Kernels
compile on their first call, never at import.

Every numba kernel here is serial, cached on disk (``_config.jit``) and
releases the GIL; the Python wrappers split rows over threads
(``linmetric._threads.kernel_threads()`` of them, see
``_chunking.run_on_row_ranges``),
so the kernels use every core and still compile only once per machine.
Results do not depend on the number of threads, except where a docstring
says otherwise.

Module map:

- ``distances``: blocked squared distances (GEMM expansion with an error
  bound), exact distances of given pairs, row norms, input checks.
- ``neighbors``: target neighbours (k nearest of the same class).
- ``impostors``: the impostor search (pairs inside a radius, other class)
  and sorting pairs by row.
- ``lmnn``: LMNN's per-triplet pass, partial impostor searches, the scale of
  the initial map, staleness ratios, LMNN's serial gradient sum.
- ``nca``: NCA's softmax weights, candidate search and truncated gradient.
- ``outer``: weighted sums of outer products of pair differences.
- ``energy``: the energy-based classification rule's scores.
- ``bregman``: ITML's Bregman projections (rank-one LogDet updates).
- ``mlkr``: MLKR's leave-one-out kernel regression and its gradient.
- ``mm_lmnn``: multi-metric LMNN's push pass over the impostor pairs of
  one class metric, in blocks.
- ``scml``: SCML's stochastic steps (global RDA, local proximal AdaGrad).
- ``lsml``: LSML's quadruplet pass (differences taken by index, residual
  loss and the violated rows in one pass) and the mean feature variance.
- ``lfda``: LFDA's local scales and affinities for large classes.
- ``mmc``: diagonal MMC's similar sums and squared dissimilar differences
  in one pass over the points.
- ``dmlmj``: DMLMJ's (and KISSME's) same-class and other-class neighbour
  search.
- ``_chunking``: row blocks from the byte budget, rows split over threads
  (how many threads: :mod:`linmetric._threads`).
- ``_config``: the numba options.
"""

from ._chunking import rows_per_chunk
from .distances import (
    row_norms_sq,
    sq_distance_blocks,
    sq_distances_of_pairs,
)
from .impostors import find_impostors, sort_pairs
from .neighbors import target_neighbors
from .outer import weighted_outer_sum

__all__ = [
    "find_impostors",
    "row_norms_sq",
    "rows_per_chunk",
    "sort_pairs",
    "sq_distance_blocks",
    "sq_distances_of_pairs",
    "target_neighbors",
    "weighted_outer_sum",
]
