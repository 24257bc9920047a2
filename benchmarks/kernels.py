"""Benchmark of linmetric's kernels against NumPy and scikit-learn peers.

    python -m benchmarks kernels [--n N] [--d D] [--dtypes float32,float64]
                                 [--quick] [--json PATH]

Unlike the rest of the suite, which uses linmetric's public API only, this
benchmark calls the private kernel package ``linmetric._kernels`` directly:
timing a kernel means calling it without an estimator around it.

On random Gaussian data and on MNIST-like data (10 classes, each a mixture
of clusters in a low-dimensional subspace with a decaying spectrum, plus
isotropic noise), it times, in one process:

- ``distances``: :func:`linmetric._kernels.sq_distance_blocks` over all rows
  against NumPy's matrix product on the same blocks (the ``-2 A B^T`` term
  alone). GFLOP/s count ``2 n^2 d`` for both. Target: >= 60% of NumPy.
- ``target_neighbors``: k = 3 nearest same-class rows against
  ``sklearn.neighbors.NearestNeighbors(algorithm="brute")`` fitted per
  class. GFLOP/s count ``2 d sum_c n_c^2``. Target: not slower.
- ``impostors``: :func:`linmetric._kernels.find_impostors` against
  ``sklearn.metrics.pairwise_distances_chunked`` with a reduce function
  doing the same filtering. The radii are LMNN's: farthest target
  neighbour's squared distance plus a margin, 5% of the median of those
  distances (a unit margin for data where that median is 20). GFLOP/s count the full ``2 n^2 d`` for both (the kernel computes fewer:
  only differently labelled pairs, each once). Target: >= 3x faster.
- ``outer_sum``: :func:`linmetric._kernels.weighted_outer_sum` over the
  impostor pairs against ``X^T (D - W - W^T) X`` with ``scipy.sparse``.

Times are the best of three runs (one with ``--quick``), kernel and baseline
runs alternating so that both see the same machine load, after an untimed
warm-up call of every kernel. numba's first-call cost is measured apart, in
fresh subprocesses: ``compile_seconds``
with an empty numba cache (a true compile) and ``cached_first_call_seconds``
with the default on-disk cache. The kernels are called in table order in one
process, so ``distances`` also carries numba's one-time start-up and the
helpers it compiles for the others.

Impostor pairs are checked against the baseline: ``pairs_differing`` counts
the pairs only one side found. They sit at the radius, where scikit-learn's
float32 distances round one way and the kernel's exact float64 recheck the
other.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

N_NEIGHBORS = 3
N_CLASSES = 10
# LMNN's unit margin for data scaled so that the median squared distance to
# the farthest target neighbour is 20 (pixels in [0, 1] after PCA give ~20-40)
MARGIN = 0.05

_FIRST_CALL_SCRIPT = r"""
import json, sys, time
import numpy as np
from linmetric import _kernels as K
dtype = np.dtype(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.standard_normal((300, 8)).astype(dtype)
y = np.arange(300) % 3
radii = np.full(300, 8.0)
calls = {
    "distances": lambda: [b for b in K.sq_distance_blocks(X)],
    "target_neighbors": lambda: K.target_neighbors(X, y, 3),
    "impostors": lambda: K.find_impostors(X, y, radii),
    "outer_sum": lambda: K.weighted_outer_sum(X, [0, 1], [2, 3], [1.0, 1.0]),
}
seconds = {}
for name, call in calls.items():
    start = time.perf_counter()
    call()
    seconds[name] = time.perf_counter() - start
print(json.dumps(seconds))
"""


def make_random(n, d, dtype, seed=0):
    """Standard Gaussian rows with uniformly random labels in 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, N_CLASSES, n)
    return X, y


def make_mnist_like(
    n, d, dtype, seed=0, latent_dim=40, clusters_per_class=4, separation=1.0, style=0.8
):
    """Structured data shaped like PCA-reduced digits.

    Each class is a mixture of clusters (writing styles); cluster centres and
    within-cluster spread live in a ``latent_dim`` subspace whose axes have a
    decaying spectrum (scale ``1/(k+1)``), embedded in ``d`` dimensions by a
    random orthonormal basis, plus small isotropic noise. Classes overlap as
    in MNIST: the 3-NN error is about 2%.
    """
    rng = np.random.default_rng(seed)
    latent_dim = min(latent_dim, d)
    spectrum = 1.0 / np.arange(1, latent_dim + 1)
    y = rng.integers(0, N_CLASSES, n)
    class_centres = rng.standard_normal((N_CLASSES, latent_dim)) * spectrum * separation
    style_offsets = (
        rng.standard_normal((N_CLASSES, clusters_per_class, latent_dim))
        * spectrum
        * 1.5
    )
    cluster = rng.integers(0, clusters_per_class, n)
    latent = class_centres[y] + style_offsets[y, cluster]
    latent += rng.standard_normal((n, latent_dim)) * spectrum
    basis, _ = np.linalg.qr(rng.standard_normal((d, latent_dim)))
    X = latent @ basis.T + 0.01 * rng.standard_normal((n, d))
    return X.astype(dtype), y


def _best_times(kernel, baseline, repeats):
    """Best-of-``repeats`` seconds of both, runs alternating.

    Alternating kernel and baseline runs exposes both to the same changes in
    machine load. Returns ``(seconds, result, baseline_seconds,
    baseline_result)``.
    """
    best = [np.inf, np.inf]
    results = [None, None]
    for _ in range(repeats):
        for side, function in enumerate((kernel, baseline)):
            start = time.perf_counter()
            results[side] = function()
            best[side] = min(best[side], time.perf_counter() - start)
    return best[0], results[0], best[1], results[1]


def _rates(seconds, baseline_seconds, flops, baseline, target_ratio):
    """The fields every kernel record has: seconds and GFLOP/s of both sides."""
    return {
        "seconds": seconds,
        "gflops": None if flops is None else flops / seconds / 1e9,
        "baseline": baseline,
        "baseline_seconds": baseline_seconds,
        "baseline_gflops": None if flops is None else flops / baseline_seconds / 1e9,
        "target_ratio": target_ratio,
    }


def _blas_summary():
    """The BLAS NumPy uses, and OPENBLAS_CORETYPE if set, as record fields."""
    from .environment import blas_info

    pool = next((p for p in blas_info() if p.get("user_api") == "blas"), {})
    return {
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "blas": pool.get("internal_api"),
        "blas_version": pool.get("version"),
        "blas_architecture": pool.get("architecture"),
        "blas_threads": pool.get("num_threads"),
    }


def first_call_seconds(dtype, *, cold):
    """First-call seconds of each kernel in a fresh Python process.

    ``cold=True`` points numba at an empty cache directory, so the time is a
    full compile; otherwise the default cache is used (a load when warm).
    """
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache_dir:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache_dir
        completed = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL_SCRIPT, np.dtype(dtype).name],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if completed.returncode != 0:
        return {}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _distances(X, repeats):
    from linmetric._kernels import sq_distance_blocks

    def kernel():
        for _start, _stop, _block in sq_distance_blocks(X):
            pass

    # the baseline computes the product on exactly the kernel's blocks
    bounds = []
    for start, stop, _block in sq_distance_blocks(X):
        bounds.append((start, stop))

    def baseline():
        for start, stop in bounds:
            np.matmul(X[start:stop], X.T)

    seconds, _, baseline_seconds, _ = _best_times(kernel, baseline, repeats)
    flops = 2.0 * X.shape[0] ** 2 * X.shape[1]
    return {
        **_rates(seconds, baseline_seconds, flops, "numpy.matmul (same blocks)", 0.6),
        "block_rows": bounds[0][1] - bounds[0][0],
    }


def _target_neighbors(X, y, repeats):
    from sklearn.neighbors import NearestNeighbors

    from linmetric._kernels import target_neighbors

    def baseline():
        indices = np.empty((X.shape[0], N_NEIGHBORS), dtype=np.intp)
        for label in np.unique(y):
            members = np.flatnonzero(y == label)
            search = NearestNeighbors(n_neighbors=N_NEIGHBORS, algorithm="brute")
            neighbors = search.fit(X[members]).kneighbors(return_distance=False)
            indices[members] = members[neighbors]
        return indices

    seconds, (indices, sq_dists), baseline_seconds, baseline_indices = _best_times(
        lambda: target_neighbors(X, y, N_NEIGHBORS, return_distance=True),
        baseline,
        repeats,
    )
    flops = 2.0 * X.shape[1] * float(np.sum(np.bincount(y).astype(float) ** 2))
    baseline_name = "sklearn NearestNeighbors(brute) per class"
    return {
        **_rates(seconds, baseline_seconds, flops, baseline_name, 1.0),
        "agreement": float(np.mean(indices == baseline_indices)),
    }, sq_dists


def _count_differing(n, rows, cols, other_rows, other_cols):
    keys = rows.astype(np.int64) * n + cols
    other_keys = other_rows.astype(np.int64) * n + other_cols
    return int(np.setxor1d(keys, other_keys, assume_unique=True).size)


def _impostors(X, y, radii, repeats):
    from sklearn.metrics import pairwise_distances_chunked

    from linmetric._kernels import find_impostors

    def baseline():
        pieces = []

        def reduce(chunk, start):
            stop = start + chunk.shape[0]
            mask = chunk < radii[start:stop, None]
            mask &= y[start:stop, None] != y[None, :]
            rows, cols = np.nonzero(mask)
            pieces.append((rows + start, cols, chunk[rows, cols]))

        for _ in pairwise_distances_chunked(
            X, reduce_func=reduce, metric="euclidean", squared=True
        ):
            pass
        return tuple(np.concatenate(parts) for parts in zip(*pieces, strict=True))

    seconds, (rows, cols, _), baseline_seconds, (base_rows, base_cols, _) = _best_times(
        lambda: find_impostors(X, y, radii), baseline, repeats
    )
    flops = 2.0 * X.shape[0] ** 2 * X.shape[1]
    baseline_name = "sklearn pairwise_distances_chunked + filter"
    return {
        **_rates(seconds, baseline_seconds, flops, baseline_name, 3.0),
        "n_pairs": int(rows.size),
        "baseline_n_pairs": int(base_rows.size),
        # pairs found by one side only: sklearn rounds float32 distances, the
        # kernel decides near the radius on exact float64 distances
        "pairs_differing": _count_differing(
            X.shape[0], rows, cols, base_rows, base_cols
        ),
    }, (rows, cols)


def _outer_sum(X, rows, cols, repeats, seed=0):
    import scipy.sparse as sp

    from linmetric._kernels import weighted_outer_sum

    weights = np.random.default_rng(seed).random(rows.size)
    n = X.shape[0]

    def baseline():
        W = sp.csr_matrix((weights, (rows, cols)), shape=(n, n))
        degrees = np.asarray(W.sum(axis=0)).ravel() + np.asarray(W.sum(axis=1)).ravel()
        S = sp.diags(degrees) - W - W.T
        X64 = X.astype(np.float64)
        return X64.T @ (S @ X64)

    seconds, C, baseline_seconds, C_base = _best_times(
        lambda: weighted_outer_sum(X, rows, cols, weights), baseline, repeats
    )
    return {
        **_rates(seconds, baseline_seconds, None, "scipy.sparse X^T (D-W-W^T) X", None),
        "n_pairs": int(rows.size),
        "max_abs_difference": float(np.abs(C - C_base).max()),
    }


def _warm_up(X, y):
    """Compile (or load from cache) every kernel for X's dtype, untimed."""
    from linmetric import _kernels

    for _ in _kernels.sq_distance_blocks(X):
        pass
    _, sq_dists = _kernels.target_neighbors(X, y, N_NEIGHBORS, return_distance=True)
    radii = sq_dists[:, -1].astype(np.float64) * 1.5
    rows, cols, _ = _kernels.find_impostors(X, y, radii)
    _kernels.weighted_outer_sum(X, rows, cols, np.ones(rows.size))


def run(n=20000, d=164, dtypes=("float32",), quick=False):
    """Run every kernel benchmark; return one record per measurement.

    Parameters
    ----------
    n, d : int
        Rows and features of the data (``quick`` caps ``n`` at 4,000).
    dtypes : sequence of str
    quick : bool
        One repetition and a smaller ``n``: a smoke run.

    Returns
    -------
    records : list of dict
        Keys: kernel, data, n, d, dtype, seconds, gflops, baseline,
        baseline_seconds, baseline_gflops, speedup (baseline_seconds /
        seconds), target_ratio, meets_target, compile_seconds,
        cached_first_call_seconds, the BLAS information, and per-kernel
        extras (n_pairs, agreement, ...).
    """
    if quick:
        n = min(n, 4000)
    repeats = 1 if quick else 3
    blas = _blas_summary()
    records = []
    for dtype in dtypes:
        dtype = np.dtype(dtype)
        compile_seconds = first_call_seconds(dtype, cold=True)
        cached_seconds = first_call_seconds(dtype, cold=False)
        for data_name, make in (
            ("random", make_random),
            ("mnist-like", make_mnist_like),
        ):
            X, y = make(n, d, dtype)
            _warm_up(X[:300], y[:300])
            results = {}
            results["distances"] = _distances(X, repeats)
            results["target_neighbors"], sq_dists = _target_neighbors(X, y, repeats)
            farthest = sq_dists[:, -1].astype(np.float64)
            radii = farthest + MARGIN * np.median(farthest)
            results["impostors"], (rows, cols) = _impostors(X, y, radii, repeats)
            results["outer_sum"] = _outer_sum(X, rows, cols, repeats)
            for kernel, result in results.items():
                speedup = result["baseline_seconds"] / result["seconds"]
                target = result["target_ratio"]
                records.append(
                    {
                        "kernel": kernel,
                        "data": data_name,
                        "n": int(n),
                        "d": int(d),
                        "dtype": dtype.name,
                        **result,
                        "speedup": speedup,
                        "meets_target": None if target is None else speedup >= target,
                        "compile_seconds": compile_seconds.get(kernel),
                        "cached_first_call_seconds": cached_seconds.get(kernel),
                        "repeats": repeats,
                        **blas,
                    }
                )
    return records


def format_table(records):
    """A plain-text table of the records, one line per measurement."""
    from .report import aligned

    def number(value, digits=2, suffix=""):
        return "-" if value is None else f"{value:.{digits}f}{suffix}"

    headers = ["kernel", "data", "dtype", "n", "d", "seconds", "GFLOP/s", "base s"]
    headers += ["base GF/s", "speedup", "target", "compile s", "baseline"]
    rows = [
        [
            r["kernel"],
            r["data"],
            r["dtype"],
            str(r["n"]),
            str(r["d"]),
            number(r["seconds"], 3),
            number(r["gflops"], 1),
            number(r["baseline_seconds"], 3),
            number(r["baseline_gflops"], 1),
            number(r["speedup"], suffix="x"),
            ">=" + number(r["target_ratio"], 1, "x") if r["target_ratio"] else "-",
            number(r.get("compile_seconds")),
            r["baseline"]
            + ("" if r.get("meets_target") in (None, True) else " (miss)"),
        ]
        for r in records
    ]
    lines = aligned(headers, rows, numeric=range(3, len(headers) - 1))
    if records:
        r = records[0]
        lines.append(
            f"BLAS: {r.get('blas')} {r.get('blas_version')} "
            f"({r.get('blas_architecture')}, {r.get('blas_threads')} threads); "
            f"OPENBLAS_CORETYPE={r.get('openblas_coretype')}. "
            "speedup = baseline seconds / kernel seconds. Impostor GFLOP/s count "
            "all n^2 pairs for both. compile s: first call with an empty numba cache "
            "(distances includes numba's start-up)."
        )
    return "\n".join(lines)
