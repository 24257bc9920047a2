"""The grid of runs of a suite, run in order or in parallel.

A suite is a list of :class:`Task` (data set x seed x method or peer). They
run one after the other in this process by default, which is what timings
should come from. ``n_jobs > 1`` spreads them over joblib workers, and
``backend="dask"`` over a Dask cluster through joblib's Dask backend (a
``LocalCluster`` unless a scheduler address is given): useful for grids of
accuracy runs, but the runs then share the machines' CPUs, so their times are
contended; each record names its executor.
"""

import functools
import logging
from dataclasses import dataclass

from .data import load_embedded, load_embedded_fold, load_mnist_protocol

LEARNER_PARAMS_CAPPED = ("lmnn", "lmnn2", "nca", "itml")


@dataclass(frozen=True)
class Task:
    """One run: a method (ours or a peer's) on one data set and seed."""

    suite: str
    loader: functools.partial  # loader(dataset, seed) -> Split; picklable
    dataset: str
    seed: int
    kind: str  # "linmetric" or "peer"
    name: str  # method or peer name
    n_neighbors: int = 3
    overrides: tuple = ()  # (parameter, value) pairs for the learner
    max_iter: int | None = None
    peer_timeout: float | None = None
    warmup: bool = True

    @property
    def label(self):
        return f"{self.dataset} {self.name} seed={self.seed}"


def embedded_loader():
    """Loader of the quick suite's data sets."""
    return functools.partial(_load_embedded)


def fold_loader(*, fold, n_folds):
    """Loader of one fold of the cross-validation suite's data sets."""
    return functools.partial(_load_embedded_fold, fold=fold, n_folds=n_folds)


def image_loader(**options):
    """Loader of the MNIST-protocol data sets with fixed options."""
    return functools.partial(_load_image, **options)


def _load_embedded(dataset, seed):
    return load_embedded(dataset, seed)


def _load_embedded_fold(dataset, seed, *, fold, n_folds):
    return load_embedded_fold(dataset, seed, fold=fold, n_folds=n_folds)


def _load_image(dataset, seed, **options):
    return load_mnist_protocol(dataset, seed=seed, **options)


# per-process state: the last split loaded and the learners already warmed up
_SPLIT_CACHE = {}
_WARMED = set()


def _split_for(task):
    key = (repr(task.loader), task.dataset, task.seed)
    if key not in _SPLIT_CACHE:
        _SPLIT_CACHE.clear()  # keep one split in memory at a time
        _SPLIT_CACHE[key] = task.loader(task.dataset, task.seed)
    return _SPLIT_CACHE[key]


def run_task(task, progress=None, executor="sequential"):
    """Run one task in this process; return its record."""
    from .peers import run_peer
    from .runner import run_linmetric, warm_up

    split = _split_for(task)
    overrides = dict(task.overrides)
    warmup_seconds = None
    if task.kind == "linmetric":
        if task.warmup and task.name not in _WARMED:
            if progress is not None:
                progress.start(f"warming up {task.name} (untimed)")
            warmup_seconds = warm_up(
                split,
                task.name,
                n_neighbors=task.n_neighbors,
                seed=task.seed,
                overrides=overrides,
            )
            _WARMED.add(task.name)
        if progress is not None:
            progress.start(task.label)
        record = run_linmetric(
            split,
            task.name,
            seed=task.seed,
            n_neighbors=task.n_neighbors,
            overrides=overrides,
            progress=progress,
            suite=task.suite,
        )
        record["warmup_seconds"] = warmup_seconds
    else:
        if progress is not None:
            progress.start(task.label)
        record = run_peer(
            split,
            task.name,
            seed=task.seed,
            n_neighbors=task.n_neighbors,
            max_iter=task.max_iter,
            suite=task.suite,
            timeout=task.peer_timeout,
        )
    record["executor"] = executor
    return record


def run_tasks(tasks, *, progress, n_jobs=1, backend=None, scheduler=None):
    """Run the tasks; return their records in task order.

    Parameters
    ----------
    tasks : list of Task
    progress : benchmarks.progress.Progress
        Told of each run as it starts (sequential runs only) and ends.
    n_jobs : int, default=1
        Number of parallel workers; 1 runs everything here, in order.
    backend : {None, "loky", "threading", "dask"}, default=None
        joblib backend when ``n_jobs > 1`` (None means loky).
    scheduler : str, default=None
        Address of a Dask scheduler for ``backend="dask"``; None starts a
        ``LocalCluster`` with ``n_jobs`` single-threaded workers.
    """
    from .runner import summary_line

    if n_jobs == 1 and backend in (None, "sequential"):
        records = []
        for task in tasks:
            record = run_task(task, progress)
            records.append(record)
            progress.finish(summary_line(record))
        return records

    from joblib import Parallel, delayed, parallel_config

    backend = backend or "loky"
    progress.start(f"{len(tasks)} runs on {backend} with {n_jobs} workers")
    if backend != "dask":
        executor = f"{backend}:{n_jobs}"
        with parallel_config(backend=backend, n_jobs=n_jobs):
            return _collect(tasks, progress, executor, Parallel, delayed)

    from dask.distributed import Client, LocalCluster

    if scheduler is None:
        cluster = LocalCluster(
            n_workers=n_jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler)
    try:
        executor = f"dask:{client.scheduler.address}"
        with parallel_config(backend="dask"):
            return _collect(tasks, progress, executor, Parallel, delayed)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _collect(tasks, progress, executor, Parallel, delayed):
    from .runner import summary_line

    records = []
    results = Parallel(return_as="generator")(
        delayed(run_task)(task, None, executor) for task in tasks
    )
    for record in results:
        records.append(record)
        progress.finish(summary_line(record))
    return records
