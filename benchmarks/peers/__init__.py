"""The other libraries, run on the same arrays and scored by the same code.

metric-learn 0.7.0 needs scikit-learn older than 1.8 and pylmnn 1.6.4 needs
six, GPy and GPyOpt, so they live in their own virtual environment,
``benchmarks/.peers/venv``, made by ``python -m benchmarks peers-setup``.
Each peer fit runs :mod:`benchmarks.peers.runner` as a separate process with
that environment's Python; the data goes in and the learned map comes back
through ``.npz`` files, and the suite transforms and scores on its side.
scikit-learn's NCA runs the same way with the suite's own Python. Every patch
the setup applied to a peer is recorded in its results.
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

PEERS_DIR = Path(__file__).resolve().parent.parent / ".peers"
PEERS_VENV = PEERS_DIR / "venv"
PATCHES_FILE = PEERS_DIR / "patches.json"
RUNNER = Path(__file__).resolve().parent / "runner.py"


@dataclass(frozen=True)
class Peer:
    """One method of another library."""

    name: str  # the runner's method name
    library: str
    method: str  # the linmetric method it is compared with
    environment: str  # "peers" (the peers' venv) or "main" (this Python)


PEERS = {
    peer.name: peer
    for peer in (
        Peer("metric-learn-lmnn", "metric-learn", "lmnn", "peers"),
        Peer("metric-learn-nca", "metric-learn", "nca", "peers"),
        Peer("metric-learn-itml", "metric-learn", "itml", "peers"),
        Peer("metric-learn-covariance", "metric-learn", "covariance", "peers"),
        Peer("pylmnn-lmnn", "pylmnn", "lmnn", "peers"),
        Peer("sklearn-nca", "scikit-learn", "nca", "main"),
        Peer("mlpack-lmnn", "mlpack", "lmnn", "peers"),
        Peer("mlpack-nca", "mlpack", "nca", "peers"),
    )
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


def parse_peers(text, methods=None):
    """Peer names from ``"pylmnn-lmnn,sklearn-nca"``.

    ``"default"`` (or nothing) means :data:`DEFAULT_PEERS`, ``"all"`` every
    peer, mlpack's included. With ``methods``, keep only the peers of those
    linmetric methods.
    """
    if text in (None, "", "default"):
        names = list(DEFAULT_PEERS)
    elif text == "all":
        names = list(PEERS)
    else:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in PEERS]
        if unknown:
            raise ValueError(
                f"--peers got unknown peer(s) {unknown}; choose from "
                f"{', '.join(PEERS)} or 'all'."
            )
    if methods is not None:
        names = [name for name in names if PEERS[name].method in methods]
    return names


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


def run_peer(
    split,
    peer_name,
    *,
    seed=0,
    n_neighbors=3,
    mu=0.5,
    max_iter=None,
    suite="quick",
    timeout=None,
    workdir=None,
):
    """Fit one peer method on ``split`` in its own process and score it."""
    from ..runner import MAX_FITS, REPEAT_BELOW_SECONDS, new_record
    from ..scoring import score_embedding

    peer = PEERS[peer_name]
    record = new_record(
        suite, split, peer.method, peer.library, None, seed, n_neighbors
    )
    record["peer"] = peer.name
    record["params"] = {"n_neighbors": n_neighbors, "mu": mu, "max_iter": max_iter}
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

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data_path = Path(tmp) / "data.npz"
        result_path = Path(tmp) / "result.npz"
        log_path = Path(tmp) / "log.txt"
        np.savez(
            data_path, X_train=split.X_train, y_train=split.y_train, X_test=split.X_test
        )
        command = [
            str(python),
            str(RUNNER),
            "--input",
            str(data_path),
            "--output",
            str(result_path),
            "--method",
            peer.name,
            "--n-neighbors",
            str(n_neighbors),
            "--mu",
            str(mu),
            "--seed",
            str(seed),
            "--repeat-below",
            str(REPEAT_BELOW_SECONDS),
            "--max-fits",
            str(MAX_FITS),
        ]
        if max_iter is not None:
            command += ["--max-iter", str(max_iter)]
        environment = dict(os.environ, PYTHONWARNINGS="ignore")
        start = time.perf_counter()
        try:
            with open(log_path, "w") as log:
                completed = subprocess.run(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    env=environment,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            record.update(
                status="timeout",
                note=f"no result after {time.perf_counter() - start:.0f} s",
            )
            return record
        if completed.returncode != 0 or not result_path.exists():
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            record.update(
                status="error",
                note=f"runner exited with {completed.returncode}: " + " | ".join(tail),
            )
            return record
        with np.load(result_path) as result:
            components = result["components"]
            meta = json.loads(str(result["meta"]))

    record["library_version"] = meta["environment"]["versions"].get(peer.library)
    record["peer_environment"] = meta["environment"]
    record.update(
        fit_seconds=meta["fit_seconds"],
        fit_repeats=meta.get("fit_repeats", 1),
        transform_seconds=meta["transform_seconds"],
        n_iter=meta["n_iter"],
        peak_memory_mib=meta["peak_memory_mib"],
        n_components=int(components.shape[0]),
    )
    if not np.all(np.isfinite(components)):
        record.update(status="error", note="the learned map has non-finite entries")
        return record
    Z_train = split.X_train @ components.T
    Z_test = split.X_test @ components.T
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
