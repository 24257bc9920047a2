"""The one place where numba options for linmetric's kernels are set.

Kernels are compiled lazily, on their first call, never at import.

- ``jit``: serial kernels. Cached on disk (``cache=True``), so the compile
  cost is paid once per machine, not once per process. Where no cache
  directory can be written (a read-only install without a writable home or
  ``NUMBA_CACHE_DIR``), the kernel is compiled without a cache instead:
  a missing cache costs compile time, never an import.
- ``jit_parallel``: kernels with ``prange`` loops. Not cached: numba's cache
  of parallel kernels breaks when the thread count changes between runs.

- ``jit_reassoc``: serial, cached, and allowed to reorder floating-point
  sums (``fastmath={"reassoc", "contract"}``) so that long float64
  reductions vectorise. The result changes only by rounding.

None sets the full ``fastmath``: its no-NaN/no-inf assumptions would delete
the finiteness checks some kernels rely on. ``error_model="numpy"`` makes a
division by zero give inf/NaN, as in NumPy, instead of raising, which lets
numba vectorise the loops.
"""

import numba

_COMMON = {"nogil": True, "error_model": "numpy"}


def _cached_njit(function, options):
    # numba looks for a writable cache directory when the decorator runs and
    # raises RuntimeError("cannot cache function ...") if there is none.
    try:
        return numba.njit(function, cache=True, **options)
    except RuntimeError as error:
        if "cannot cache" not in str(error):
            raise
        return numba.njit(function, **options)


def _decorator(options, args):
    # Supports both ``@jit`` and ``@jit(option=...)``.
    if args:
        return _cached_njit(args[0], options)
    return lambda function: _cached_njit(function, options)


def jit(*args, **kwargs):
    """``numba.njit`` for serial kernels: cached on disk, compiled lazily."""
    return _decorator({**_COMMON, **kwargs}, args)


def jit_reassoc(*args, **kwargs):
    """``jit`` that may reassociate sums (and fuse multiply-adds)."""
    return _decorator({"fastmath": {"reassoc", "contract"}, **_COMMON, **kwargs}, args)


def jit_parallel(*args, **kwargs):
    """``numba.njit`` for ``prange`` kernels: parallel, never cached."""
    return numba.njit(*args, parallel=True, **_COMMON, **kwargs)
