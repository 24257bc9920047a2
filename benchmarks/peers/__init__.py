"""The other libraries, run on the same arrays and scored by the same code.

metric-learn 0.7.0 needs scikit-learn older than 1.8 and pylmnn 1.6.4 needs
six, GPy and GPyOpt, so they live in their own virtual environment,
``benchmarks/.peers/venv``, made by ``python -m benchmarks peers-setup``.
Each peer fit runs :mod:`benchmarks.peers.runner` as a separate process with
that environment's Python; the data goes in and the learned map comes back
through ``.npz`` files, and the suite transforms and scores on its side.
scikit-learn's NCA runs the same way with the suite's own Python. The
process times the cold fit first, then the warm fits after the same warm-up
as linmetric's (:mod:`benchmarks.timing`); :func:`fit_in_fresh_process` also
serves the cold fits of linmetric's own runs. Every patch the setup applied
to a peer is recorded in its results.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..methods import METHODS, push_weight

PEERS_DIR = Path(__file__).resolve().parent.parent / ".peers"
PEERS_VENV = PEERS_DIR / "venv"
PATCHES_FILE = PEERS_DIR / "patches.json"
RUNNER = Path(__file__).resolve().parent / "runner.py"


@dataclass(frozen=True)
class Peer:
    """One method of another library."""

    name: str  # the runner's method name
    library: str
    environment: str  # "peers" (the peers' venv) or "main" (this Python)
    # what it fits: the runner's --task ("classification", "regression",
    # "pairs", "triplets" or "quadruplets")
    task: str = "classification"

    @property
    def suite_task(self):
        """The task of the suites that run it (see ``method_names``)."""
        return "pairs" if self.task in TUPLE_TASKS else self.task


TUPLE_TASKS = ("pairs", "triplets", "quadruplets")


PEERS = {
    peer.name: peer
    for peer in (
        Peer("metric-learn-lmnn", "metric-learn", "peers"),
        Peer("metric-learn-nca", "metric-learn", "peers"),
        Peer("metric-learn-itml", "metric-learn", "peers"),
        Peer("metric-learn-covariance", "metric-learn", "peers"),
        Peer("metric-learn-lfda", "metric-learn", "peers"),
        Peer("metric-learn-rca", "metric-learn", "peers"),
        Peer("metric-learn-mmc", "metric-learn", "peers"),
        Peer("metric-learn-sdml", "metric-learn", "peers"),
        Peer("metric-learn-lsml", "metric-learn", "peers"),
        Peer("metric-learn-scml", "metric-learn", "peers"),
        Peer("metric-learn-mlkr", "metric-learn", "peers", "regression"),
        Peer("metric-learn-itml-pairs", "metric-learn", "peers", "pairs"),
        Peer("metric-learn-mmc-pairs", "metric-learn", "peers", "pairs"),
        Peer("metric-learn-sdml-pairs", "metric-learn", "peers", "pairs"),
        Peer("metric-learn-scml-triplets", "metric-learn", "peers", "triplets"),
        Peer("metric-learn-lsml-quadruplets", "metric-learn", "peers", "quadruplets"),
        Peer("pylmnn-lmnn", "pylmnn", "peers"),
        Peer("sklearn-nca", "scikit-learn", "main"),
        Peer("mlpack-lmnn", "mlpack", "peers"),
        Peer("mlpack-nca", "mlpack", "peers"),
    )
}

# the linmetric method each peer is compared with, from the method registry
PEER_METHOD = {
    peer: name
    for name, method in METHODS.items()
    for peer in (*method.peers, *method.tuple_peers)
}

# peers run by --with-peers unless --peers names others; mlpack's take many
# minutes on digits with their defaults, so they run only when asked for
DEFAULT_PEERS = tuple(name for name, peer in PEERS.items() if peer.library != "mlpack")


def peers_python():
    """The peers' venv Python, or None if ``peers-setup`` has not been run."""
    python = PEERS_VENV / "bin" / "python"
    return python if python.exists() else None


def recorded_patches():
    """The patches ``peers-setup`` applied, as a list of dicts."""
    try:
        with open(PATCHES_FILE) as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return []


def python_output(python, code, *, check=False):
    """What ``python -c code`` prints, stripped (raises on failure if ``check``)."""
    completed = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=check
    )
    return completed.stdout.strip()


def _library_installed(python, library):
    module = {"metric-learn": "metric_learn", "scikit-learn": "sklearn"}.get(
        library, library
    )
    code = f"import importlib.util as u; print(bool(u.find_spec({module!r})))"
    return python_output(python, code) == "True"


class RunFailed(Exception):
    """A fresh-process fit gave no result; ``status`` says how it ended."""

    def __init__(self, status, note):
        super().__init__(note)
        self.status = status


def write_runner_input(path, split, task="classification"):
    """Write the ``.npz`` file the runner reads for ``task`` on ``split``.

    ``X_train`` and ``X_test`` always (the runner times the transform on
    them); the targets ``y_train`` for a fit on points, or the tuples of
    ``task`` as points, ``X_fit``, and the pair labels, ``y_fit``.
    """
    arrays = {"X_train": split.X_train, "X_test": split.X_test}
    if task in TUPLE_TASKS:
        X_fit, y_fit = split.tuple_points(task)
        arrays["X_fit"] = X_fit
        if y_fit is not None:
            arrays["y_fit"] = y_fit
    else:
        arrays["y_train"] = split.y_train
    np.savez(path, **arrays)


def fit_in_fresh_process(
    split,
    method,
    python,
    *,
    fits="both",
    seed=0,
    n_neighbors=3,
    push_weight=None,
    max_iter=None,
    timeout=None,
    pythonpath=None,
    task="classification",
):
    """Fit ``method`` on ``split`` with :mod:`benchmarks.peers.runner` in a new process.

    ``fits`` is the runner's ``--fits`` (``both``, ``cold`` or ``warm``),
    ``task`` its ``--task``: what is fitted, the training points and targets
    or the split's tuples of that kind (as points); ``pythonpath`` is put first on the new process's ``PYTHONPATH``. Returns
    ``(components, meta)``; raises :class:`RunFailed` on a timeout or an error.
    """
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.npz"
        result_path = Path(tmp) / "result.npz"
        log_path = Path(tmp) / "log.txt"
        write_runner_input(data_path, split, task)
        command = [python, RUNNER, "--input", data_path, "--output", result_path]
        command += ["--method", method, "--fits", fits, "--seed", seed]
        command += ["--task", task]
        command += ["--n-neighbors", n_neighbors]
        if push_weight is not None:
            command += ["--push-weight", push_weight]
        if max_iter is not None:
            command += ["--max-iter", max_iter]
        environment = dict(os.environ, PYTHONWARNINGS="ignore")
        if pythonpath is not None:
            paths = [str(pythonpath), environment.get("PYTHONPATH", "")]
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        start = time.perf_counter()
        try:
            with open(log_path, "w") as log:
                completed = subprocess.run(
                    [str(part) for part in command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    env=environment,
                    check=False,
                )
        except subprocess.TimeoutExpired as exc:
            seconds = time.perf_counter() - start
            raise RunFailed("timeout", f"no result after {seconds:.0f} s") from exc
        if completed.returncode != 0 or not result_path.exists():
            lines = log_path.read_text(errors="replace").strip().splitlines()
            # the exception's message, which may span lines, after its frame
            frames = [i for i, line in enumerate(lines) if line.startswith("  ")]
            tail = lines[frames[-1] + 1 :] if frames else lines[-3:]
            tail = [line.strip() for line in tail[-6:] if not line.startswith("  ")]
            raise RunFailed(
                "error",
                f"runner exited with {completed.returncode}: " + " | ".join(tail),
            )
        with np.load(result_path) as result:
            return result["components"], json.loads(str(result["meta"]))


def run_peer(
    split,
    peer_name,
    *,
    seed=0,
    n_neighbors=3,
    max_iter=None,
    cold=True,
    suite="quick",
    timeout=None,
):
    """Fit one peer method on ``split`` in its own process and score it.

    The process times a cold fit first (unless ``cold`` is False), then the
    warm fits after the same untimed warm-up as linmetric's.
    """
    from ..runner import new_record, score_into

    peer = PEERS[peer_name]
    method = PEER_METHOD[peer_name]
    record = new_record(suite, split, method, peer.library, None, seed, n_neighbors)
    record["peer"] = peer.name
    weight = push_weight(method)
    record["params"] = {
        "n_neighbors": n_neighbors,
        "push_weight": weight,
        "max_iter": max_iter,
    }
    python = Path(sys.executable) if peer.environment == "main" else peers_python()
    if python is None:
        record.update(
            status="unavailable",
            note="the peers' environment is missing; run "
            "'python -m benchmarks peers-setup' first",
        )
        return record
    if not _library_installed(python, peer.library):
        record.update(status="unavailable", note=f"{peer.library} is not installed")
        return record
    record["patches"] = [
        p for p in recorded_patches() if p.get("package") == peer.library
    ]
    try:
        components, meta = fit_in_fresh_process(
            split,
            peer.name,
            python,
            fits="both" if cold else "warm",
            seed=seed,
            n_neighbors=n_neighbors,
            push_weight=weight,
            max_iter=max_iter,
            timeout=timeout,
            task=peer.task,
        )
    except RunFailed as exc:
        record.update(status=exc.status, note=str(exc))
        return record
    record["library_version"] = meta["environment"]["versions"].get(peer.library)
    record["peer_environment"] = meta["environment"]
    for field in (
        "fit_seconds",
        "cold_fit_seconds",
        "fit_repeats",
        "transform_seconds",
        "n_iter",
        "peak_memory_mib",
    ):
        record[field] = meta[field]
    record["n_components"] = int(components.shape[0])
    if meta.get("warnings"):
        record["note"] = "; ".join(meta["warnings"])
    if not np.all(np.isfinite(components)):
        record.update(status="error", note="the learned map has non-finite entries")
        return record
    return score_into(
        record, split, split.X_train @ components.T, split.X_test @ components.T
    )
