"""Run methods on splits and turn each run into one record.

A record is a flat dict (see :data:`RECORD_FIELDS`) plus ``params``,
``loss_curve``, ``patches`` and ``environment``; the same scoring code
(:func:`benchmarks.scoring.score_embedding`) serves every library.
"""

import time
import warnings

import numpy as np

from .data import Split
from .memory import PeakMemory
from .methods import METHODS
from .scoring import score_embedding

# A fit shorter than REPEAT_BELOW_SECONDS is run again, up to MAX_FITS fits in
# all, and the median time is reported: on a shared machine one short fit is
# at the mercy of a single scheduling hiccup. Peers' fits follow the same rule:
# benchmarks.peers hands both numbers to its runner.
REPEAT_BELOW_SECONDS = 1.0
MAX_FITS = 5

# the scalar fields of a record, in table/CSV order
RECORD_FIELDS = (
    "suite",
    "dataset",
    "method",
    "library",
    "library_version",
    "seed",
    "fold",
    "n_neighbors",
    "n_train",
    "n_test",
    "n_features",
    "n_components",
    "n_classes",
    "status",
    "fit_seconds",
    "fit_repeats",
    "transform_seconds",
    "n_iter",
    "knn_accuracy",
    "energy_accuracy",
    "energy_seconds",
    "precision_at_1",
    "map_at_r",
    "nmi",
    "ari",
    "peak_memory_mib",
    "warmup_seconds",
    "speedup_vs_peer",
    "compared_with",
    "executor",
    "note",
)


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


def new_record(suite, split, method, library, library_version, seed, n_neighbors):
    """A record with every field present, the run's identity filled in."""
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(
        suite=suite,
        dataset=split.name,
        method=method,
        library=library,
        library_version=library_version,
        seed=seed,
        fold=split.info.get("fold"),
        n_neighbors=n_neighbors,
        n_train=int(split.X_train.shape[0]),
        n_test=int(split.X_test.shape[0]),
        n_features=int(split.X_train.shape[1]),
        n_classes=split.n_classes,
        status="ok",
        note="",
        params={},
        loss_curve=None,
        patches=[],
        data=dict(split.info),
    )
    return record


def _warning_note(caught):
    messages = []
    for item in caught:
        text = f"{item.category.__name__}: {str(item.message).splitlines()[0][:120]}"
        if text not in messages:
            messages.append(text)
    return "; ".join(messages)


def _energy_accuracy(lmnn, split):
    """Accuracy and seconds of the energy-based rule on an already fitted LMNN."""
    import linmetric

    classifier = linmetric.EnergyClassifier(lmnn)
    start = time.perf_counter()
    classifier.fit(split.X_train, split.y_train)
    accuracy = float(classifier.score(split.X_test, split.y_test))
    return accuracy, time.perf_counter() - start


def run_linmetric(
    split,
    method_name,
    *,
    seed=0,
    n_neighbors=3,
    overrides=None,
    progress=None,
    suite="quick",
):
    """Fit one linmetric method (or the Euclidean baseline) and score it."""
    import linmetric

    method = METHODS[method_name]
    library = "baseline" if method.class_name is None else "linmetric"
    record = new_record(
        suite, split, method_name, library, linmetric.__version__, seed, n_neighbors
    )
    callback = progress.callback if progress is not None else None
    if method.class_name is None:
        start = time.perf_counter()
        Z_train, Z_test = split.X_train, split.X_test
        record.update(fit_seconds=0.0, transform_seconds=time.perf_counter() - start)
        record["n_components"] = record["n_features"]
    else:
        try:
            estimator = method.make(
                n_neighbors=n_neighbors,
                seed=seed,
                callback=callback,
                overrides=overrides,
            )
        except ImportError as exc:
            record.update(status="unavailable", note=str(exc))
            return record
        record["params"] = {
            key: value
            for key, value in estimator.get_params(deep=False).items()
            if key != "callback"
            and isinstance(value, (int, float, str, bool, type(None)))
        }
        reports_progress = estimator.get_params(deep=False).get("callback")

        def fit():
            estimator.fit(split.X_train, split.y_train)
            if reports_progress is not None:  # progress of the first fit only
                estimator.set_params(callback=None)

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with PeakMemory() as memory:
                    fit_times = timed_fits(fit)
                median = float(np.median(fit_times))
                record.update(fit_seconds=median, fit_repeats=len(fit_times))
                start = time.perf_counter()
                Z_train = estimator.transform(split.X_train)
                Z_test = estimator.transform(split.X_test)
                record["transform_seconds"] = time.perf_counter() - start
                if method.energy_rule:
                    try:
                        accuracy, seconds = _energy_accuracy(estimator, split)
                        record.update(energy_accuracy=accuracy, energy_seconds=seconds)
                    except (ImportError, AttributeError) as exc:
                        record["note"] = f"energy rule unavailable: {exc}"
                    except Exception as exc:  # the learned map is still scored
                        record["note"] = (
                            f"energy rule failed: {type(exc).__name__}: {exc}"
                        )
        except Exception as exc:  # a failing learner must not stop the suite
            record.update(status="error", note=f"{type(exc).__name__}: {exc}")
            return record
        record["peak_memory_mib"] = memory.peak_mib
        record["n_components"] = int(estimator.components_.shape[0])
        n_iter = getattr(estimator, "n_iter_", None)
        record["n_iter"] = None if n_iter is None else int(n_iter)
        loss_curve = getattr(estimator, "loss_curve_", None)
        if loss_curve is not None:
            record["loss_curve"] = [float(value) for value in np.ravel(loss_curve)]
        note = _warning_note(caught)
        if note:
            record["note"] = "; ".join(filter(None, [record["note"], note]))
    record.update(
        score_embedding(
            Z_train,
            split.y_train,
            Z_test,
            split.y_test,
            n_neighbors=n_neighbors,
            seed=seed,
        )
    )
    return record


def warm_up(split, method_name, *, n_neighbors=3, seed=0, overrides=None):
    """Fit a method once on a small slice of ``split``, untimed; return seconds.

    The first fit of a learner in a process also compiles its numba kernels
    (or loads them from numba's cache); doing that here keeps compilation out
    of the timed fits. Failures are left for the timed run to report.
    """
    method = METHODS[method_name]
    if method.class_name is None:
        return 0.0
    from sklearn.model_selection import train_test_split

    n_train = len(split.y_train)
    size = min(n_train, max(20 * split.n_classes, 60))
    X, y = split.X_train, split.y_train
    if size < n_train:
        X, _, y, _ = train_test_split(
            X, y, train_size=size, stratify=y, random_state=seed
        )
    start = time.perf_counter()
    try:
        overrides = dict(overrides or {})
        estimator = method.make(n_neighbors=n_neighbors, seed=seed, overrides=overrides)
        # a whole fit on the slice, so that the kernels of later stages
        # (partial impostor searches, restarts) are compiled too
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X, y)
            estimator.transform(X)
            if method.energy_rule:
                _energy_accuracy(estimator, Split(split.name, X, y, X[:5], y[:5]))
    except Exception:  # the timed run reports what went wrong
        pass
    return time.perf_counter() - start


def summary_line(record):
    """One line describing a finished run."""
    head = (
        f"{record['dataset']} {record['method']} ({record['library']}) "
        f"seed={record['seed']}"
    )
    if record.get("fold") is not None:
        head += f" fold={record['fold']}"
    if record["status"] != "ok":
        return f"{head}: {record['status']}: {record['note'][:150]}"
    text = (
        f"{head}: fit {record['fit_seconds']:.2f} s, "
        f"{record['n_neighbors']}-NN acc {record['knn_accuracy']:.4f}"
    )
    if record.get("n_iter") is not None:
        text += f", {record['n_iter']} iter"
    if record.get("energy_accuracy") is not None:
        text += f", energy acc {record['energy_accuracy']:.4f}"
    return text


def add_speed_ratios(records):
    """Give each peer record the ratio of its fit time to linmetric's.

    ``speedup_vs_peer`` is ``peer fit seconds / linmetric fit seconds`` for the
    same data set, seed and learner: above 1 means linmetric was faster.
    """
    ours = {
        (r["dataset"], r["seed"], r["method"]): r
        for r in records
        if r["library"] == "linmetric" and r["status"] == "ok"
    }
    for record in records:
        if record["library"] in ("linmetric", "baseline") or record["status"] != "ok":
            continue
        mine = ours.get((record["dataset"], record["seed"], record["method"]))
        if mine is None or not mine["fit_seconds"]:
            continue
        record["speedup_vs_peer"] = record["fit_seconds"] / mine["fit_seconds"]
        record["compared_with"] = f"linmetric {mine['method']}"
    return records
