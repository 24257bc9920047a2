"""Fit one method in a fresh process, on arrays read from a file.

The suite runs this script for every run of another library, with the peers'
virtual environment's Python (see ``python -m benchmarks peers-setup``), and
for the cold fit of each linmetric run, with the suite's own Python. It reads
``X_train``, ``y_train`` and ``X_test`` from an ``.npz`` file (for the tuple
tasks, ``X_fit``, the tuples as points, and ``y_fit``, the pair labels, in
place of ``y_train``), fits the named method under the suite's timing rule (:mod:`benchmarks.timing`): the cold
fit first (the first fit of the process, the library already imported), then
the untimed warm-up fit on the slice, then the warm fits. It writes an
``.npz`` file with the learned linear map ``components`` (the suite
transforms and scores the data with its own code) and a JSON string ``meta``:
cold and warm fit seconds, transform seconds, iterations, peak memory,
versions, the warnings the fits raised.

linmetric is not installed in the peers' environment and the ``benchmarks``
package need not be importable, so the suite's timing, memory and
environment modules (standard library and NumPy only) are loaded by file
path; so is :mod:`benchmarks.methods` for linmetric's methods.

Usage::

    python runner.py --input data.npz --output result.npz --method pylmnn-lmnn \
        [--fits both|cold|warm] [--n-neighbors 3] [--push-weight 0.5] [--seed 0] \
        [--max-iter N] [--task classification|regression|pairs|triplets|quadruplets]
"""

import argparse
import importlib
import importlib.util
import json
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np

SUITE_DIR = Path(__file__).resolve().parent.parent


def load_suite_module(name):
    """Import ``benchmarks/<name>.py`` by its file path."""
    spec = importlib.util.spec_from_file_location(
        f"_suite_{name}", SUITE_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


timing = load_suite_module("timing")
memory = load_suite_module("memory")
environment = load_suite_module("environment")


class _Fitted:
    """What every method hands back: the map and the counters."""

    def __init__(self, components, n_iter=None, transform=None):
        self.components = np.asarray(components, dtype=np.float64)
        self.n_iter = n_iter
        self.transform = transform


def _estimator_fit(build, X, y):
    estimator = build()
    # triplets and quadruplets come without labels
    estimator = estimator.fit(X) if y is None else estimator.fit(X, y)
    learner = getattr(estimator, "learner_", estimator)  # linmetric's tuple estimators
    n_iter = getattr(learner, "n_iter_", None)
    # a classifier with a map per class or a metric per point (linmetric's
    # MultiMetricLMNN, LocalSCML) has no transform, and LocalSCML no
    # components_: an empty map stands for it (only the times are used)
    components = getattr(estimator, "components_", np.empty((0, 0)))
    return _Fitted(components, n_iter, getattr(estimator, "transform", None))


def _estimator(module, class_name, names, args):
    """A fit function of a scikit-learn-style class; imports happen here, untimed.

    ``names`` maps the runner's options (``n_neighbors``, ``push_weight``, ``seed``,
    ``max_iter``) to the class's parameters; options left unset are not passed.
    """
    cls = getattr(importlib.import_module(module), class_name)
    params = {
        name: getattr(args, option)
        for option, name in names.items()
        if getattr(args, option) is not None
    }
    return partial(_estimator_fit, partial(cls, **params))


def _mlpack(name, args):
    mlpack = importlib.import_module("mlpack")
    # mlpack's seed 0 means "seed from the clock"
    params = {"seed": args.seed + 1}
    if name == "lmnn":
        params.update(k=args.n_neighbors, regularization=args.push_weight)
        if args.max_iter is not None:
            params["passes"] = args.max_iter
    else:
        # mlpack's default optimizer for NCA is SGD over single points with
        # 500,000 steps, far slower than the other libraries' batch solvers;
        # L-BFGS with metric-learn's default of 100 iterations is comparable
        params.update(optimizer="lbfgs", max_iterations=args.max_iter or 100)

    def fit(X, y):
        result = getattr(mlpack, name)(
            input_=X, labels=np.asarray(y, dtype=np.int64), **params
        )
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


def _linmetric(args):
    method = load_suite_module("methods").METHODS[args.method]
    if method.class_name is None:
        return lambda X, y: _Fitted(np.eye(X.shape[1]))
    make = method.make
    if args.task in ("pairs", "triplets", "quadruplets"):
        make = method.make_tuple_estimator
    build = partial(
        make,
        n_neighbors=args.n_neighbors,
        seed=args.seed,
        max_iter=args.max_iter,
    )
    build()  # imports linmetric and checks the parameters, untimed
    return partial(_estimator_fit, build)


_SEEDED = {"seed": "random_state", "max_iter": "max_iter"}
_LMNN = {"n_neighbors": "n_neighbors", **_SEEDED}
# the peers of scikit-learn-style classes: module, class, parameter names
ESTIMATORS = {
    "metric-learn-lmnn": (
        "metric_learn",
        "LMNN",
        {"push_weight": "regularization", **_LMNN},
    ),
    "metric-learn-nca": ("metric_learn", "NCA", _SEEDED),
    "metric-learn-itml": ("metric_learn", "ITML_Supervised", _SEEDED),
    "metric-learn-covariance": ("metric_learn", "Covariance", {}),
    "metric-learn-lfda": ("metric_learn", "LFDA", {}),
    "metric-learn-rca": ("metric_learn", "RCA_Supervised", {"seed": "random_state"}),
    "metric-learn-mlkr": ("metric_learn", "MLKR", _SEEDED),
    "metric-learn-mmc": ("metric_learn", "MMC_Supervised", _SEEDED),
    "metric-learn-sdml": ("metric_learn", "SDML_Supervised", {"seed": "random_state"}),
    "metric-learn-lsml": ("metric_learn", "LSML_Supervised", _SEEDED),
    "metric-learn-scml": ("metric_learn", "SCML_Supervised", _SEEDED),
    # the same learners on the suite's tuples (given as points)
    "metric-learn-itml-pairs": ("metric_learn", "ITML", _SEEDED),
    "metric-learn-mmc-pairs": ("metric_learn", "MMC", _SEEDED),
    "metric-learn-sdml-pairs": ("metric_learn", "SDML", {"seed": "random_state"}),
    "metric-learn-scml-triplets": ("metric_learn", "SCML", _SEEDED),
    "metric-learn-lsml-quadruplets": ("metric_learn", "LSML", _SEEDED),
    "pylmnn-lmnn": (
        "pylmnn",
        "LargeMarginNearestNeighbor",
        {"push_weight": "weight_push_loss", **_LMNN},
    ),
    "sklearn-nca": ("sklearn.neighbors", "NeighborhoodComponentsAnalysis", _SEEDED),
}
# peer name -> args -> fit(X, y); any other name is a linmetric method
PEER_FITS = {
    **{name: partial(_estimator, *estimator) for name, estimator in ESTIMATORS.items()},
    "mlpack-lmnn": partial(_mlpack, "lmnn"),
    "mlpack-nca": partial(_mlpack, "nca"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--method", required=True, help="a peer's name or a linmetric method's"
    )
    parser.add_argument("--fits", choices=("both", "cold", "warm"), default="both")
    parser.add_argument("--n-neighbors", type=int, default=3)
    parser.add_argument("--push-weight", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument(
        "--task",
        choices=("classification", "regression", "pairs", "triplets", "quadruplets"),
        default="classification",
    )
    args = parser.parse_args(argv)

    with np.load(args.input) as data:
        X_train = np.ascontiguousarray(data["X_train"])
        X_test = np.ascontiguousarray(data["X_test"])
        X_fit = np.ascontiguousarray(data["X_fit"]) if "X_fit" in data else X_train
        y_fit = None
        for key in ("y_fit", "y_train"):
            if key in data:
                y_fit = np.asarray(data[key])
                break
    fit = PEER_FITS.get(args.method, _linmetric)(args)
    fitted = []

    def fit_training_set():
        fitted[:] = [fit(X_fit, y_fit)]

    # the warm-up slice is stratified by class or pair labels only
    strata = y_fit if args.task in ("classification", "pairs") else None
    if strata is None:
        strata = np.zeros(len(X_fit), dtype=np.intp)
    rows = timing.warm_up_rows(
        strata, args.seed, min_rows=timing.warm_up_min_rows(X_fit)
    )

    def warm_up():
        fit(X_fit[rows], None if y_fit is None else y_fit[rows])

    # the cold fit comes first; peak memory covers the warm-up and warm fits,
    # as on linmetric's side
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cold, _ = timing.cold_and_warm_seconds(
            fit_training_set, warm_up, cold=args.fits != "warm", warm=False
        )
        with memory.PeakMemory() as meter:
            _, warm = timing.cold_and_warm_seconds(
                fit_training_set, warm_up, cold=False, warm=args.fits != "cold"
            )
    messages = []
    for item in caught:
        # scikit-learn API renamings seen by an old library say nothing of the fit
        if issubclass(item.category, (FutureWarning, DeprecationWarning)):
            continue
        text = f"{item.category.__name__}: {str(item.message).splitlines()[0][:160]}"
        if text not in messages:
            messages.append(text)
    meta = {"method": args.method, "n_iter": None, "transform_seconds": None}
    meta.update(
        cold_fit_seconds=cold,
        fit_seconds=None if warm is None else float(np.median(warm)),
        fit_repeats=None if warm is None else len(warm),
        peak_memory_mib=meter.peak_mib,
        warnings=messages,
    )
    fitted = fitted[0]
    if fitted.n_iter is not None:
        meta["n_iter"] = int(fitted.n_iter)
    if fitted.transform is not None:
        meta["transform_seconds"] = timing.time_once(
            lambda: (fitted.transform(X_train), fitted.transform(X_test))
        )
    packages = ("numpy", "scipy", "scikit-learn", "metric-learn", "pylmnn", "mlpack")
    meta["environment"] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": environment.platform.platform(),
        "versions": environment.package_versions(packages),
        "blas": environment.blas_info(),
    }
    np.savez(args.output, components=fitted.components, meta=json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
