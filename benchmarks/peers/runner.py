"""Fit one method of another library on arrays read from a file.

This script runs inside the peers' virtual environment (see
``python -m benchmarks peers-setup``), where linmetric is not installed, so
it imports nothing from this repository. It reads ``X_train`` and ``y_train``
from an ``.npz`` file, fits the named method, and writes an ``.npz`` file with
the learned linear map ``components`` (so that the suite transforms and scores
the data with its own code) and a JSON string ``meta`` with the fit and
transform seconds, iterations, peak memory and versions.

Usage::

    python runner.py --input data.npz --output result.npz --method pylmnn-lmnn \
        --n-neighbors 3 --mu 0.5 --seed 0 [--max-iter N] \
        [--repeat-below 1.0 --max-fits 5]
"""

import argparse
import json
import os
import platform
import sys
import threading
import time
from importlib import metadata

import numpy as np


def _rss_bytes():
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


class _PeakMemory:
    """Peak growth of the resident set size inside a block, in MiB."""

    def __enter__(self):
        self.peak_mib = None
        self._start = self._peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        if self._start is not None:
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            rss = _rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __exit__(self, *exc_info):
        if self._start is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (max(self._peak, _rss_bytes() or 0) - self._start) / 2**20


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


class _Fitted:
    """What every method hands back: the map and the counters."""

    def __init__(self, components, n_iter=None, transform=None):
        self.components = np.asarray(components, dtype=np.float64)
        self.n_iter = n_iter
        self.transform = transform


def _estimator_fit(estimator, X, y):
    estimator.fit(X, y)
    n_iter = getattr(estimator, "n_iter_", None)
    return _Fitted(estimator.components_, n_iter, estimator.transform)


def _metric_learn(name):
    def fit(X, y, args):
        import metric_learn

        if name == "lmnn":
            params = {
                "n_neighbors": args.n_neighbors,
                "regularization": args.mu,
                "random_state": args.seed,
            }
            if args.max_iter is not None:
                params["max_iter"] = args.max_iter
            estimator = metric_learn.LMNN(**params)
        elif name == "nca":
            params = {"random_state": args.seed}
            if args.max_iter is not None:
                params["max_iter"] = args.max_iter
            estimator = metric_learn.NCA(**params)
        elif name == "itml":
            params = {"random_state": args.seed}
            if args.max_iter is not None:
                params["max_iter"] = args.max_iter
            estimator = metric_learn.ITML_Supervised(**params)
        else:
            estimator = metric_learn.Covariance()
        return _estimator_fit(estimator, X, y)

    return fit


def _pylmnn(X, y, args):
    from pylmnn import LargeMarginNearestNeighbor

    params = {
        "n_neighbors": args.n_neighbors,
        "weight_push_loss": args.mu,
        "random_state": args.seed,
    }
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    return _estimator_fit(LargeMarginNearestNeighbor(**params), X, y)


def _sklearn_nca(X, y, args):
    from sklearn.neighbors import NeighborhoodComponentsAnalysis

    params = {"random_state": args.seed}
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    return _estimator_fit(NeighborhoodComponentsAnalysis(**params), X, y)


def _mlpack(name):
    def fit(X, y, args):
        import mlpack

        labels = np.asarray(y, dtype=np.int64)
        # mlpack's seed 0 means "seed from the clock"
        seed = args.seed + 1
        if name == "lmnn":
            params = {"k": args.n_neighbors, "regularization": args.mu, "seed": seed}
            if args.max_iter is not None:
                params["passes"] = args.max_iter
            result = mlpack.lmnn(input_=X, labels=labels, **params)
        else:
            # mlpack's default optimizer for NCA is SGD over single points with
            # 500,000 steps, far slower than the other libraries' batch solvers;
            # L-BFGS with metric-learn's default of 100 iterations is comparable
            params = {
                "seed": seed,
                "optimizer": "lbfgs",
                "max_iterations": 100 if args.max_iter is None else args.max_iter,
            }
            result = mlpack.nca(input_=X, labels=labels, **params)
        output = np.asarray(result["output"], dtype=np.float64)
        # The bindings hand matrices over transposed (rows are points), so the
        # learned map arrives as L^T; LMNN's transformed data confirms it.
        components = output.T
        transformed = result.get("transformed_data")
        if transformed is not None and not np.allclose(
            X @ components.T, transformed, rtol=1e-6, atol=1e-8
        ):
            components = output
        return _Fitted(components)

    return fit


METHODS = {
    "identity": lambda X, y, args: _Fitted(np.eye(X.shape[1])),
    "metric-learn-lmnn": _metric_learn("lmnn"),
    "metric-learn-nca": _metric_learn("nca"),
    "metric-learn-itml": _metric_learn("itml"),
    "metric-learn-covariance": _metric_learn("covariance"),
    "pylmnn-lmnn": _pylmnn,
    "sklearn-nca": _sklearn_nca,
    "mlpack-lmnn": _mlpack("lmnn"),
    "mlpack-nca": _mlpack("nca"),
}


def _blas():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "num_threads", "threading_layer")
    return [{k: pool.get(k) for k in keys if k in pool} for pool in threadpool_info()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--method", required=True, choices=sorted(METHODS))
    parser.add_argument("--n-neighbors", type=int, default=3)
    parser.add_argument("--mu", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=None)
    # the suite's timing rule: a fit shorter than --repeat-below seconds is
    # run again, up to --max-fits fits in all, and the median is reported
    parser.add_argument("--repeat-below", type=float, default=1.0)
    parser.add_argument("--max-fits", type=int, default=5)
    args = parser.parse_args(argv)

    with np.load(args.input) as data:
        X_train = np.ascontiguousarray(data["X_train"])
        y_train = np.asarray(data["y_train"])
        X_test = np.ascontiguousarray(data["X_test"])
    meta = {"method": args.method, "n_iter": None, "transform_seconds": None}
    seconds = []
    with _PeakMemory() as memory:
        while True:
            start = time.perf_counter()
            fitted = METHODS[args.method](X_train, y_train, args)
            seconds.append(time.perf_counter() - start)
            if seconds[0] >= args.repeat_below or len(seconds) == args.max_fits:
                break
    meta["fit_seconds"] = float(np.median(seconds))
    meta["fit_repeats"] = len(seconds)
    meta["peak_memory_mib"] = memory.peak_mib
    if fitted.n_iter is not None:
        meta["n_iter"] = int(fitted.n_iter)
    if fitted.transform is not None:
        start = time.perf_counter()
        fitted.transform(X_train)
        fitted.transform(X_test)
        meta["transform_seconds"] = time.perf_counter() - start
    meta["environment"] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "versions": {
            name: _version(name)
            for name in (
                "numpy",
                "scipy",
                "scikit-learn",
                "metric-learn",
                "pylmnn",
                "mlpack",
            )
        },
        "blas": _blas(),
    }
    np.savez(args.output, components=fitted.components, meta=json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
