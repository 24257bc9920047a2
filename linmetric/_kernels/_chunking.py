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
decision. The calling thread runs one share itself and hands the others to
a pool of threads kept for the process (starting threads for every call
cost more than the small kernels themselves); a call made from a pool
thread (nesting) makes threads of its own, so calls may nest and run from
several threads at once without waiting on each other.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from .._threads import MIN_ROWS_PER_THREAD, MIN_WORK_PER_THREAD, kernel_threads

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


def run_on_row_ranges(kernel, n_rows, *args, n_threads=None, row_work=None):
    """Call ``kernel(start, stop, *args)`` on disjoint ranges covering ``n_rows``.

    The ranges run in parallel threads; ``kernel`` must be a ``nogil`` numba
    function that writes only to rows ``start:stop`` of its outputs. Results
    do not depend on the number of threads.

    Parameters
    ----------
    kernel : callable
    n_rows : int
    *args
        Passed on after ``start, stop``.
    n_threads : int, optional
        Threads to use; by default ``kernel_threads`` decides, giving each
        thread at least ``MIN_ROWS_PER_THREAD`` rows and, when ``row_work``
        is given, at least ``MIN_WORK_PER_THREAD`` work.
    row_work : int, optional
        The work of one row (its inner-loop length).

    Returns
    -------
    results : list
        The kernel's return values, in range order.
    """
    if n_threads is None:
        n_threads = kernel_threads(n_rows, MIN_ROWS_PER_THREAD)
        if row_work is not None and n_threads > 1:
            work = n_rows * max(int(row_work), 1)
            n_threads = min(n_threads, kernel_threads(work, MIN_WORK_PER_THREAD))
    if n_threads <= 1:
        return [kernel(0, n_rows, *args)]
    ranges = split_range(n_rows, n_threads)
    return run_tasks([(kernel, a, b, *args) for a, b in ranges])


_POOL = None
_POOL_LOCK = threading.Lock()
_IN_POOL = threading.local()


def _forget_pool():
    # A forked child has none of its parent's threads.
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(os.cpu_count() or 1, 1),
                thread_name_prefix="linmetric-kernel",
                initializer=_mark_pool_thread,
            )
        return _POOL


def _mark_pool_thread():
    _IN_POOL.active = True


def run_tasks(tasks):
    """Run ``func(*args)`` for each ``(func, *args)`` in ``tasks`` on threads.

    Returns the results in task order. The first task runs in the calling
    thread, the others on the process's pool; called from a pool thread
    (a task that itself calls ``run_tasks``), the others run on threads
    made for this call, so that no pool thread waits on the pool.
    """
    first, *others = tasks
    if not others:
        func, *args = first
        return [func(*args)]
    if getattr(_IN_POOL, "active", False):
        with ThreadPoolExecutor(
            max_workers=len(others), thread_name_prefix="linmetric-nested"
        ) as executor:
            return _run_on(executor, first, others)
    return _run_on(_pool(), first, others)


def _run_on(executor, first, others):
    futures = [executor.submit(*task) for task in others]
    func, *args = first
    try:
        first_result = func(*args)
    except BaseException:
        wait(futures)  # no task may outlive the call that owns its arrays
        raise
    return [first_result, *(future.result() for future in futures)]
