"""How many threads the kernels and BLAS use: one policy, in one place.

Each learner's ``fit`` validates its input, then runs inside
:func:`fit_threads`, which sets both limits from the problem size. The
kernels ask :func:`kernel_threads` how many threads to split their rows
over. On small problems each kernel call and each GEMM takes microseconds,
and handing work to other threads costs more than it saves (on a busy
machine far more), so small fits run on one thread.

The kernel limit is a context variable: it holds for the calling thread
(and context) only, and nested limits restore the outer one on exit.
"""

import os
from contextlib import contextmanager
from contextvars import ContextVar

# LMNN up to this many samples: kernels and BLAS on one thread.
LMNN_SERIAL_MAX_SAMPLES = 5000
# NCA's exact solver up to this many samples: BLAS on one thread (its GEMMs,
# n x n x n_components, are too small to gain from BLAS threads).
NCA_SERIAL_BLAS_MAX_SAMPLES = 2048
# LFDA while its largest class has at most this many samples, and MLKR up to
# this many samples: kernels and BLAS on one thread (their per-class or
# per-block products are too small to gain from threads).
LFDA_SERIAL_MAX_CLASS_SIZE = 2048
MLKR_SERIAL_MAX_SAMPLES = 2048
# MMC up to this many features: BLAS on one thread (its many small products
# and eigendecompositions lose far more to thread hand-offs than they gain).
MMC_SERIAL_MAX_FEATURES = 256
# ITML up to this many features: BLAS on one thread (its d x d products and
# factorisations, one per sweep, are too small to gain from threads).
ITML_SERIAL_BLAS_MAX_FEATURES = 256
# LSML and SDML up to this many features: BLAS on one thread (LSML's
# products are n_tuples x d x d, SDML's d x d factorisations; on two busy
# cores, BLAS threads made LSML's digits fit 12 times slower).
TUPLE_SERIAL_BLAS_MAX_FEATURES = 256
# A kernel gives each thread at least this many rows ...
MIN_ROWS_PER_THREAD = 8
# ... and, when its caller states the work of a row, at least this much work
# (in units of one row's inner-loop element: a distance, an exponential):
# about half a millisecond, far above the cost of handing work to a thread.
MIN_WORK_PER_THREAD = 2**18
# ... and a sparse outer-product sum at least this many pairs.
MIN_PAIRS_PER_THREAD = 4096

_KERNEL_LIMIT = ContextVar("linmetric_kernel_threads", default=None)
# The BLAS limit an enclosing limit_threads set in this thread and context:
# a nested limit to the same number is then free (threadpoolctl's costs
# tens of microseconds, and small fits enter one per kernel call).
_BLAS_LIMIT = ContextVar("linmetric_blas_threads", default=None)
# threadpoolctl's view of the loaded BLAS libraries, made once: building it
# scans every loaded library, which costs milliseconds per fit.
_BLAS_CONTROLLER = None


def kernel_threads(n_items=None, min_per_thread=1):
    """Number of threads a kernel splits its work over.

    ``numba.get_num_threads()`` (which follows ``NUMBA_NUM_THREADS`` and
    ``numba.set_num_threads``), capped by an enclosing :func:`limit_threads`
    and, when ``n_items`` is given, by ``n_items // min_per_thread``.
    Always at least 1.
    """
    # The cheap limits first: asking numba costs tens of microseconds, and
    # serial small fits ask for every kernel call.
    limit = _KERNEL_LIMIT.get()
    if n_items is not None:
        by_items = int(n_items) // max(int(min_per_thread), 1)
        limit = by_items if limit is None else min(limit, by_items)
    if limit is not None and limit <= 1:
        return 1
    import numba

    n_threads = max(1, int(numba.get_num_threads()))
    if limit is not None:
        n_threads = min(n_threads, limit)
    return max(1, n_threads)


@contextmanager
def limit_threads(kernels=None, blas=None):
    """Run kernels on at most ``kernels`` threads and BLAS on ``blas``.

    None leaves that limit as it is. The BLAS limit is threadpoolctl's.
    """
    token = None if kernels is None else _KERNEL_LIMIT.set(max(1, int(kernels)))
    blas = None if blas is None else max(1, int(blas))
    try:
        if blas is None or _BLAS_LIMIT.get() == blas:
            yield
        else:
            blas_token = _BLAS_LIMIT.set(blas)
            try:
                with _blas_controller().limit(limits=blas, user_api="blas"):
                    yield
            finally:
                _BLAS_LIMIT.reset(blas_token)
    finally:
        if token is not None:
            _KERNEL_LIMIT.reset(token)


# Parts of a loaded library's file name that can mark a BLAS
# (libopenblas*, libscipy_openblas*, libblas*, libflexiblas*, libblis* via
# its libblas name, libmkl_rt*, mkl_rt*).
_BLAS_NAME_PARTS = ("blas", "mkl")


def _blas_controller():
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        # NumPy and SciPy load their BLAS on import, before any fit.
        _BLAS_CONTROLLER = _find_blas()
    return _BLAS_CONTROLLER


def _find_blas():
    """threadpoolctl's controller of the loaded BLAS libraries.

    threadpoolctl resolves the path of every loaded library (some 200 once
    numba is loaded), about 10 ms: most of a first small fit in a fresh
    process. Only the libraries whose file name can be a BLAS are resolved;
    if none of those turns out to be one, the full scan decides.
    """
    from threadpoolctl import ThreadpoolController

    class _NamedLikeBlas(ThreadpoolController):
        def _make_controller_from_path(self, filepath):
            name = os.path.basename(filepath).lower()
            if any(part in name for part in _BLAS_NAME_PARTS):
                super()._make_controller_from_path(filepath)

    found = _NamedLikeBlas().select(user_api="blas")
    if found.lib_controllers:
        return found
    return ThreadpoolController().select(user_api="blas")


def fit_threads(job, n_samples):
    """The thread limits for one fit of ``job`` on ``n_samples`` samples.

    Parameters
    ----------
    job : {'lmnn', 'nca_exact', 'nca_truncated', 'itml', 'lfda', 'mlkr', 'mmc', \
'lsml', 'sdml'}
        The solver about to run.
    n_samples : int
        Number of samples, after validation (for 'itml', 'mmc', 'lsml' and
        'sdml', the number of features; for 'lfda', the size of the largest
        class).

    Returns
    -------
    context : context manager
        Sets the limits inside its block.
    """
    if job == "lmnn":
        serial = n_samples <= LMNN_SERIAL_MAX_SAMPLES
        return limit_threads(kernels=1 if serial else None, blas=1 if serial else None)
    if job == "nca_exact":
        serial = n_samples <= NCA_SERIAL_BLAS_MAX_SAMPLES
        return limit_threads(blas=1 if serial else None)
    if job == "nca_truncated":
        # Its GEMMs are n x n_components x n_components or already split over
        # threads by the kernels: BLAS threads only add synchronisation.
        return limit_threads(blas=1)
    if job == "itml":
        serial = n_samples <= ITML_SERIAL_BLAS_MAX_FEATURES
        return limit_threads(blas=1 if serial else None)
    if job == "lfda":
        serial = n_samples <= LFDA_SERIAL_MAX_CLASS_SIZE
        return limit_threads(kernels=1 if serial else None, blas=1 if serial else None)
    if job == "mlkr":
        return limit_threads(blas=1 if n_samples <= MLKR_SERIAL_MAX_SAMPLES else None)
    if job == "mmc":
        return limit_threads(blas=1 if n_samples <= MMC_SERIAL_MAX_FEATURES else None)
    if job in ("lsml", "sdml"):
        serial = n_samples <= TUPLE_SERIAL_BLAS_MAX_FEATURES
        return limit_threads(blas=1 if serial else None)
    raise ValueError(f"unknown job {job!r}")
