"""Run methods on splits and turn each run into one record.

A record is a flat dict (see :data:`RECORD_FIELDS`) plus ``params``,
``loss_curve``, ``patches`` and ``environment``; the same scoring code
(:func:`benchmarks.scoring.score_embedding`) serves every library.
"""

import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from .data import Split
from .memory import PeakMemory
from .methods import METHODS
from .peers import RunFailed, fit_in_fresh_process
from .scoring import knn_accuracy, regression_scores, score_embedding, tuple_scores
from .timing import cold_and_warm_seconds, warm_up_min_rows, warm_up_rows

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
    "cold_fit_seconds",
    "transform_seconds",
    "n_iter",
    "n_tuples",
    "knn_accuracy",
    "pair_auc",
    "pair_accuracy",
    "triplet_accuracy",
    "quadruplet_accuracy",
    "knn_rmse",
    "knn_r2",
    "kernel_rmse",
    "kernel_r2",
    "energy_accuracy",
    "energy_seconds",
    "precision_at_1",
    "map_at_r",
    "nmi",
    "ari",
    "peak_memory_mib",
    "speedup_vs_peer",
    "cold_speedup_vs_peer",
    "compared_with",
    "load_before",
    "load_after",
    "busy",
    "executor",
    "note",
)


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
        n_tuples=split.info.get("n_tuples"),
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


def score_into(record, split, Z_train, Z_test):
    """Add the scores of a learned space to ``record``; return it.

    What is scored depends on the split's task: kNN accuracy, retrieval and
    clustering (classification); kNN accuracy and the held-out tuples'
    scores (pairs); kNN and kernel regression error (regression).
    """
    k = record["n_neighbors"]
    if split.task == "regression":
        scores = regression_scores(
            Z_train, split.y_train, Z_test, split.y_test, n_neighbors=k
        )
    elif split.task == "pairs":
        scores = {
            "knn_accuracy": knn_accuracy(
                Z_train, split.y_train, Z_test, split.y_test, k
            )
        }
        scores.update(tuple_scores(Z_train, Z_test, split.tuples))
    else:
        scores = score_embedding(
            Z_train,
            split.y_train,
            Z_test,
            split.y_test,
            n_neighbors=k,
            seed=record["seed"],
        )
    record.update(scores)
    return record


def runner_task(split, method_name):
    """What a method fits in a split: the peers' runner's ``--task``.

    ``classification`` or ``regression`` (points and targets), or, in the
    pairs suite, the method's kind of tuples.
    """
    if split.task == "pairs":
        return METHODS[method_name].tuples
    return split.task


def fit_arrays(split, task):
    """The arrays a fit of ``task`` takes: ``(X, y)``; ``y`` is None for triplets
    and quadruplets."""
    if task in ("classification", "regression"):
        return split.X_train, split.y_train
    return split.tuple_points(task)


def warm_up_labels(task, X, y):
    """Labels the warm-up slice is stratified by (:func:`benchmarks.timing.warm_up_rows`).

    Class labels and pair labels stratify it; real targets and unlabelled
    tuples do not (one stratum).
    """
    if y is None or task not in ("classification", "pairs"):
        return np.zeros(len(X), dtype=np.intp)
    return y


def _build(method, task, make, callback=None):
    if task in ("classification", "regression"):
        return method.make(callback=callback, **make)
    # the tuple estimators clone the learner, and a live progress display
    # cannot be copied: their fits report no progress
    return method.make_tuple_estimator(**make)


def run_linmetric(
    split,
    method_name,
    *,
    seed=0,
    n_neighbors=3,
    max_iter=None,
    cold=True,
    timeout=None,
    progress=None,
    suite="quick",
):
    """Fit one linmetric method (or the Euclidean baseline) and score it.

    The warm fits follow an untimed warm-up fit on a slice (:func:`warm_up`)
    under :func:`benchmarks.timing.cold_and_warm_seconds`, as in the peers'
    runner; with ``cold``, the cold fit is timed in a fresh process
    (:func:`cold_fit_seconds`). Peak memory covers the warm-up and warm fits
    on both sides.
    """
    import linmetric

    method = METHODS[method_name]
    library = "baseline" if method.class_name is None else "linmetric"
    record = new_record(
        suite, split, method_name, library, linmetric.__version__, seed, n_neighbors
    )
    if method.class_name is None:
        record.update(fit_seconds=0.0, n_components=record["n_features"])
        record["transform_seconds"] = 0.0
        return score_into(record, split, split.X_train, split.X_test)
    make = {"n_neighbors": n_neighbors, "seed": seed, "max_iter": max_iter}
    callback = progress.callback if progress is not None else None
    task = runner_task(split, method_name)
    try:
        estimator = _build(method, task, make, callback)
    except ImportError as exc:
        record.update(status="unavailable", note=str(exc))
        return record
    params = estimator.get_params(deep=True)
    record["params"] = {
        key: value
        for key, value in params.items()
        if not key.endswith("callback")
        and isinstance(value, (int, float, str, bool, type(None)))
    }
    # the progress display follows the first fit only
    progress_keys = {
        key: None for key, value in params.items() if key.endswith("callback") and value
    }
    X_fit, y_fit = fit_arrays(split, task)
    try:

        def fit():
            if y_fit is None:
                estimator.fit(X_fit)
            else:
                estimator.fit(X_fit, y_fit)
            if progress_keys:
                estimator.set_params(**progress_keys)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with PeakMemory() as memory:
                _, fit_times = cold_and_warm_seconds(
                    fit, partial(warm_up, split, method_name, **make), cold=False
                )
            record.update(
                fit_seconds=float(np.median(fit_times)), fit_repeats=len(fit_times)
            )
            start = time.perf_counter()
            if method.classifier:
                # its own rule: no single map gives its distances
                accuracy = float(estimator.score(split.X_test, split.y_test))
            else:
                Z_train = estimator.transform(split.X_train)
                Z_test = estimator.transform(split.X_test)
            record["transform_seconds"] = time.perf_counter() - start
    except Exception as exc:  # a failing learner must not stop the suite
        record.update(status="error", note=f"{type(exc).__name__}: {exc}")
        return record
    notes = [_warning_note(caught)]
    if method.energy_rule:
        try:
            accuracy, seconds = _energy_accuracy(estimator, split)
            record.update(energy_accuracy=accuracy, energy_seconds=seconds)
        except Exception as exc:  # the learned map is still scored
            notes.append(f"energy rule failed: {type(exc).__name__}: {exc}")
    if cold:
        try:
            record["cold_fit_seconds"] = cold_fit_seconds(
                split, method_name, timeout=timeout, **make
            )
        except RunFailed as exc:  # the warm fits are still reported
            notes.append(f"cold fit: {exc.status}: {exc}")
    record["peak_memory_mib"] = memory.peak_mib
    # a learner with a metric per point (LocalSCML) has no components_
    components = getattr(estimator, "components_", None)
    record["n_components"] = None if components is None else int(components.shape[-2])
    learner = getattr(estimator, "learner_", estimator)  # a tuple estimator's
    n_iter = getattr(learner, "n_iter_", None)
    record["n_iter"] = None if n_iter is None else int(n_iter)
    loss_curve = getattr(learner, "loss_curve_", None)
    if loss_curve is not None:
        record["loss_curve"] = [float(value) for value in np.ravel(loss_curve)]
    record["note"] = "; ".join(filter(None, notes))
    if method.classifier:
        record["knn_accuracy"] = accuracy
        return record
    return score_into(record, split, Z_train, Z_test)


def warm_up(split, method_name, *, n_neighbors=3, seed=0, max_iter=None):
    """Fit a method once on the warm-up slice of ``split``, untimed.

    The first fit of a learner in a process also compiles its numba kernels
    (or loads them from numba's cache); doing that here keeps it out of the
    warm fits. The peers' runner warms up on the same slice
    (:func:`benchmarks.timing.warm_up_rows`). A whole fit, so that the
    kernels of later stages (partial impostor searches, restarts) are
    compiled too.
    """
    method = METHODS[method_name]
    task = runner_task(split, method_name)
    X_fit, y_fit = fit_arrays(split, task)
    labels = warm_up_labels(task, X_fit, y_fit)
    rows = warm_up_rows(labels, seed, min_rows=warm_up_min_rows(X_fit))
    make = {"n_neighbors": n_neighbors, "seed": seed, "max_iter": max_iter}
    estimator = _build(method, task, make)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if y_fit is None:
            estimator.fit(X_fit[rows])
        else:
            estimator.fit(X_fit[rows], y_fit[rows])
        if method.classifier:
            estimator.predict(split.X_train[:5])
        else:
            estimator.transform(split.X_train[:5])
        if method.energy_rule:
            X, y = split.X_train[rows], split.y_train[rows]
            _energy_accuracy(estimator, Split(split.name, X, y, X[:5], y[:5]))


def cold_fit_seconds(split, method_name, *, timeout=None, **make):
    """Seconds of the first fit of ``split`` in a fresh process of this Python.

    The process imports linmetric (from where this one did) before the timed
    fit, so the time holds what a first fit pays: loading the compiled
    kernels from numba's cache, or compiling them, and first-touch costs.
    """
    import linmetric

    _, meta = fit_in_fresh_process(
        split,
        method_name,
        sys.executable,
        fits="cold",
        task=runner_task(split, method_name),
        timeout=timeout,
        pythonpath=Path(linmetric.__file__).resolve().parent.parent,
        **make,
    )
    return meta["cold_fit_seconds"]


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
    text = f"{head}: fit {record['fit_seconds']:.2f} s warm"
    if record.get("cold_fit_seconds") is not None:
        text += f", {record['cold_fit_seconds']:.2f} s cold"
    k = record["n_neighbors"]
    if record.get("knn_accuracy") is not None:
        text += f", {k}-NN acc {record['knn_accuracy']:.4f}"
    if record.get("pair_auc") is not None:
        text += f", pair AUC {record['pair_auc']:.4f}"
    if record.get("knn_rmse") is not None:
        text += f", {k}-NN RMSE {record['knn_rmse']:.3f}"
        text += f", kernel RMSE {record['kernel_rmse']:.3f}"
    if record.get("n_iter") is not None:
        text += f", {record['n_iter']} iter"
    if record.get("energy_accuracy") is not None:
        text += f", energy acc {record['energy_accuracy']:.4f}"
    return text


def add_speed_ratios(records):
    """Give each peer record the ratios of its fit times to linmetric's.

    ``speedup_vs_peer`` is ``peer fit seconds / linmetric fit seconds`` of the
    warm fits, ``cold_speedup_vs_peer`` the same of the cold fits, for the same
    data set, seed and learner: above 1 means linmetric was faster.
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
        if mine is None:
            continue
        record["compared_with"] = f"linmetric {mine['method']}"
        for ratio, field in (
            ("speedup_vs_peer", "fit_seconds"),
            ("cold_speedup_vs_peer", "cold_fit_seconds"),
        ):
            if mine[field] and record[field] is not None:
                record[ratio] = record[field] / mine[field]
    return records
