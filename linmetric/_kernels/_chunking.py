"""Block sizes from a byte budget, and splitting rows over threads.

Every kernel that would otherwise touch an ``n x n`` array works on blocks
of rows instead. :func:`rows_per_chunk` turns a byte budget (the
``working_memory`` setting, in MiB) into a number of rows per block, so that
the memory a kernel needs depends on that budget, not on ``n**2``.

The serial numba kernels release the GIL (``nogil=True`` in
:mod:`linmetric._kernels._config`), so :func:`run_on_row_ranges` can run one
kernel on disjoint row ranges from several Python threads. That keeps the
kernels cached on disk (``prange`` kernels cannot be) while still using every
core. How many threads is :func:`linmetric._threads.kernel_threads`'s
decision. Each call makes its own threads, so calls may nest and run from
several threads at once.
"""

from concurrent.futures import ThreadPoolExecutor

from .._threads import MIN_ROWS_PER_THREAD, kernel_threads

_MIB = 2**20


def get_working_memory(working_memory=None):
    """Return the working-memory budget in MiB.

    Parameters
    ----------
    working_memory : float or None
        Budget in MiB. None means ``sklearn.get_config()["working_memory"]``,
        read at call time so that ``sklearn.config_context`` applies.

    Returns
    -------
    working_memory : float
        A positive number of MiB.
    """
    if working_memory is None:
        import sklearn  # imported lazily: kernels do not otherwise need it

        working_memory = sklearn.get_config()["working_memory"]
    try:
        value = float(working_memory)
    except (TypeError, ValueError):
        raise TypeError(
            f"working_memory must be a positive number of MiB or None, "
            f"got {working_memory!r}."
        ) from None
    if not value > 0 or value == float("inf"):
        raise ValueError(
            f"working_memory must be a positive, finite number of MiB, "
            f"got {working_memory!r}."
        )
    return value


def rows_per_chunk(bytes_per_row, working_memory=None, *, max_rows=None):
    """Number of rows whose working arrays fit in the byte budget.

    Parameters
    ----------
    bytes_per_row : int
        Bytes of working memory one row of a block needs (for a distance
        block: number of columns times the item size, plus any per-column
        index buffer).
    working_memory : float or None
        Budget in MiB; None means ``sklearn.get_config()["working_memory"]``.
    max_rows : int or None
        Upper bound on the result (usually the number of rows to process).

    Returns
    -------
    n_rows : int
        At least 1, even when a single row exceeds the budget, and at most
        ``max_rows`` when it is given.

    Examples
    --------
    >>> from linmetric._kernels._chunking import rows_per_chunk
    >>> rows_per_chunk(4 * 1000, working_memory=1)
    262
    >>> rows_per_chunk(4 * 1000, working_memory=1, max_rows=100)
    100
    """
    budget = get_working_memory(working_memory) * _MIB
    n_rows = max(1, int(budget // max(int(bytes_per_row), 1)))
    if max_rows is not None:
        n_rows = max(1, min(n_rows, int(max_rows)))
    return n_rows


def split_range(n, n_parts):
    """Split ``range(n)`` into at most ``n_parts`` contiguous ``(start, stop)``."""
    n_parts = max(1, min(int(n_parts), int(n)))
    bounds = [(n * p) // n_parts for p in range(n_parts + 1)]
    return [
        (bounds[p], bounds[p + 1]) for p in range(n_parts) if bounds[p + 1] > bounds[p]
    ]


def run_on_row_ranges(kernel, n_rows, *args, n_threads=None):
    """Call ``kernel(start, stop, *args)`` on disjoint ranges covering ``n_rows``.

    The ranges run in parallel threads; ``kernel`` must be a ``nogil`` numba
    function that writes only to rows ``start:stop`` of its outputs. Results
    do not depend on the number of threads.

    Returns
    -------
    results : list
        The kernel's return values, in range order.
    """
    if n_threads is None:
        n_threads = kernel_threads(n_rows, MIN_ROWS_PER_THREAD)
    if n_threads <= 1:
        return [kernel(0, n_rows, *args)]
    ranges = split_range(n_rows, n_threads)
    return run_tasks([(kernel, a, b, *args) for a, b in ranges])


def run_tasks(tasks):
    """Run ``func(*args)`` for each ``(func, *args)`` in ``tasks`` on threads.

    Returns the results in task order. One task runs in the calling thread;
    more run on threads made for this call, so that a task may itself call
    ``run_tasks`` without waiting on a shared pool.
    """
    if len(tasks) == 1:
        func, *args = tasks[0]
        return [func(*args)]
    with ThreadPoolExecutor(
        max_workers=len(tasks), thread_name_prefix="linmetric-kernel"
    ) as executor:
        futures = [executor.submit(*task) for task in tasks]
        return [future.result() for future in futures]
