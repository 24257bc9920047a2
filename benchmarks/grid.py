"""The grid of runs of a suite, run in order or in parallel.

A suite is a list of :class:`Task` (data set x seed x method or peer). They
run one after the other in this process by default, which is what timings
should come from. ``n_jobs > 1`` spreads them over joblib workers, and
``backend="dask"`` over a Dask cluster through joblib's Dask backend (a
``LocalCluster`` unless a scheduler address is given): useful for grids of
accuracy runs, but the runs then share the machines' CPUs, so their times are
contended; each record names its executor.
"""

import logging
from dataclasses import dataclass

from .timing import BUSY_LOAD_PER_CPU, is_busy, load_average


@dataclass(frozen=True)
class Task:
    """One run: a method (ours or a peer's) on one data set and seed."""

    suite: str
    loader: object  # loader(dataset, seed=seed) -> Split; picklable
    dataset: str
    seed: int
    kind: str  # "linmetric" or "peer"
    name: str  # method or peer name
    n_neighbors: int = 3
    max_iter: int | None = None  # cap of the iterative learners, ours and peers'
    peer_timeout: float | None = None  # also bounds our cold-fit process
    cold: bool = True  # also time the first fit in a fresh process
    busy_load: float = BUSY_LOAD_PER_CPU  # load average per CPU that marks a run busy

    @property
    def label(self):
        return f"{self.dataset} {self.name} seed={self.seed}"


def run_task(task, progress=None, executor="sequential", splits=None):
    """Run one task in this process; return its record.

    ``splits`` is a dict reused across calls to keep the last split loaded;
    the machine's load average is recorded before and after the run.
    """
    from .peers import run_peer
    from .runner import run_linmetric

    key = (repr(task.loader), task.dataset, task.seed)
    splits = {} if splits is None else splits
    if key not in splits:
        splits.clear()  # keep one split in memory at a time
        splits[key] = task.loader(task.dataset, seed=task.seed)
    if progress is not None:
        progress.start(task.label)
    common = {
        "seed": task.seed,
        "n_neighbors": task.n_neighbors,
        "max_iter": task.max_iter,
        "cold": task.cold,
        "timeout": task.peer_timeout,
        "suite": task.suite,
    }
    load_before = load_average()
    if task.kind == "linmetric":
        record = run_linmetric(splits[key], task.name, progress=progress, **common)
    else:
        record = run_peer(splits[key], task.name, **common)
    load_after = load_average()
    record.update(
        load_before=load_before,
        load_after=load_after,
        busy=is_busy(load_before, load_after, per_cpu=task.busy_load),
        executor=executor,
    )
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
        records, splits = [], {}
        for task in tasks:
            record = run_task(task, progress, splits=splits)
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
