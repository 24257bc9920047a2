"""The suite's timing rule, the same for every library.

A *warm* fit time is taken after an untimed warm-up fit on a small stratified
slice of the training set (:func:`warm_up_rows`), in the same process: it
leaves out one-time costs such as compiling or loading numba kernels and
first-touch allocations. A fit shorter than :data:`REPEAT_BELOW_SECONDS` is
run again, up to :data:`MAX_FITS` fits in all, and the median is reported
(:func:`timed_fits`): on a shared machine one short fit is at the mercy of a
single scheduling hiccup. A *cold* fit time is the first fit of the whole
training set in a fresh process, the library already imported.

This module needs only the standard library and NumPy: the peers' runner,
which runs in an environment without linmetric, loads it by file path.
"""

import os
import time

import numpy as np

REPEAT_BELOW_SECONDS = 1.0
MAX_FITS = 5
# the warm-up slice: this many rows of each class, and at least WARM_UP_ROWS
WARM_UP_PER_CLASS = 20
WARM_UP_ROWS = 60
# a load average above this many runnable processes per CPU marks a run busy
BUSY_LOAD_PER_CPU = 0.5


def timed_fits(fit, clock=time.perf_counter):
    """Call ``fit()`` and return the seconds of each call.

    One call, or up to :data:`MAX_FITS` when the first takes less than
    :data:`REPEAT_BELOW_SECONDS`.

    >>> len(timed_fits(lambda: None))
    5
    """
    seconds = []
    while True:
        start = clock()
        fit()
        seconds.append(clock() - start)
        if seconds[0] >= REPEAT_BELOW_SECONDS or len(seconds) == MAX_FITS:
            return seconds


def time_once(fit, clock=time.perf_counter):
    """Seconds of one call of ``fit()``."""
    start = clock()
    fit()
    return clock() - start


def cold_and_warm_seconds(
    fit, warm_up, *, cold=True, warm=True, clock=time.perf_counter
):
    """Time ``fit()`` under the suite's rule; return ``(cold, warm)`` seconds.

    With ``cold``, the first call of ``fit()`` is timed alone (``cold`` is its
    seconds; call this first thing in a fresh process). With ``warm``,
    ``warm_up()`` runs untimed, then :func:`timed_fits` times ``fit()`` and
    ``warm`` is the list of its seconds. What is not timed is None.
    """
    cold_seconds = time_once(fit, clock) if cold else None
    warm_seconds = None
    if warm:
        warm_up()
        warm_seconds = timed_fits(fit, clock)
    return cold_seconds, warm_seconds


def warm_up_rows(y, seed=0, min_rows=WARM_UP_ROWS):
    """Sorted row indices of the warm-up slice of a training set with labels ``y``.

    Up to :data:`WARM_UP_PER_CLASS` rows of each class, more when there are
    few classes so that the slice has ``min_rows`` rows if the data does,
    drawn at random with ``seed``. Tuples are warmed up on at least twice
    as many as there are features (:func:`warm_up_min_rows`): some learners
    refuse fewer tuples than features.

    >>> warm_up_rows(np.repeat([0, 1], 50)).size
    60
    >>> warm_up_rows(np.zeros(500), min_rows=128).size
    128
    """
    y = np.asarray(y)
    classes = np.unique(y)
    per_class = max(WARM_UP_PER_CLASS, -(-min_rows // classes.size))
    rng = np.random.default_rng(seed)
    rows = [
        rng.permutation(np.flatnonzero(y == label))[:per_class] for label in classes
    ]
    return np.sort(np.concatenate(rows))


def warm_up_min_rows(X_fit):
    """Rows of the warm-up slice of ``X_fit``: points, or tuples of points.

    :data:`WARM_UP_ROWS` for points (2-D); for tuples (3-D), at least twice
    the number of features as well.
    """
    if np.ndim(X_fit) == 3:
        return max(WARM_UP_ROWS, 2 * np.shape(X_fit)[2])
    return WARM_UP_ROWS


def load_average():
    """The one-minute load average of the machine, or None where unknown."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def available_cpus():
    """Number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def is_busy(load_before, load_after, *, per_cpu=BUSY_LOAD_PER_CPU, cpus=None):
    """Whether the load average around a run exceeded ``per_cpu`` per CPU.

    >>> is_busy(0.1, 3.0, per_cpu=0.5, cpus=2), is_busy(0.1, 0.2, per_cpu=0.5, cpus=2)
    (True, False)
    """
    loads = [load for load in (load_before, load_after) if load is not None]
    return bool(loads) and max(loads) > per_cpu * (cpus or available_cpus())
