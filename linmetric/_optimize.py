"""The optimizer driver shared by the iterative learners.

Objectives are pure functions; this module owns everything around them:
iteration counting, the user's callback, the verbose table, the
per-iteration history and the ``ConvergenceWarning``.
"""

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning


class IterationLog:
    """History, verbose table, callback and convergence report of one fit.

    Parameters
    ----------
    estimator_name : str
        Shown in the verbose table and in warnings, e.g. ``"LMNN"``.
    verbose : int, default=0
        0 prints nothing; 1 or more prints one row per iteration.
    callback : callable, optional
        Called as ``callback(components, n_iter)`` after every iteration.
    columns : sequence of str, default=()
        Extra per-iteration quantities (besides ``loss`` and ``seconds``),
        passed to :meth:`record` as keyword arguments.
    stream : file-like, optional
        Where the verbose table goes; standard output by default.
    """

    def __init__(
        self, estimator_name, *, verbose=0, callback=None, columns=(), stream=None
    ):
        self.estimator_name = estimator_name
        self.verbose = verbose
        self.callback = callback
        self.columns = tuple(columns)
        self.stream = stream
        self._values = {name: [] for name in ("loss", *self.columns, "seconds")}
        self._start = time.perf_counter()

    def record(self, n_iter, loss, components=None, **extras):
        """Record the state after iteration ``n_iter`` (counted from 1)."""
        unknown = set(extras) - set(self.columns)
        if unknown:
            raise KeyError(f"unknown history columns {sorted(unknown)}")
        seconds = time.perf_counter() - self._start
        row = {"loss": float(loss), **extras, "seconds": seconds}
        for name, values in self._values.items():
            values.append(row.get(name, np.nan))
        if self.verbose:
            if len(self._values["loss"]) == 1:
                self._print_header()
            self._print_row(n_iter, row)
        if self.callback is not None:
            self.callback(components, n_iter)

    def finish(self, converged, message=None):
        """Close the fit: warn if it did not converge, verbose or not."""
        if self.verbose:
            state = "converged" if converged else "did not converge"
            detail = f" ({message})" if message else ""
            n_iter = len(self._values["loss"])
            self._write(
                f"[{self.estimator_name}] {state} after {n_iter} iterations in "
                f"{time.perf_counter() - self._start:.2f} s{detail}"
            )
        if not converged:
            detail = f": {message}" if message else ""
            warnings.warn(
                f"{self.estimator_name} did not converge{detail}. Increase "
                "max_iter or loosen tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

    @property
    def history(self):
        """dict of name -> ndarray, one entry per iteration."""
        return {name: np.asarray(values) for name, values in self._values.items()}

    @property
    def loss_curve(self):
        """ndarray of the loss after each iteration."""
        return np.asarray(self._values["loss"], dtype=float)

    def _print_header(self):
        names = [
            "Iteration",
            "Loss",
            *(c.replace("_", " ").capitalize() for c in self.columns),
            "Time(s)",
        ]
        header = " ".join(f"{name:>14}" for name in names)
        self._write(f"[{self.estimator_name}] {header}")
        self._write(f"[{self.estimator_name}] {'-' * len(header)}")

    def _print_row(self, n_iter, row):
        cells = [f"{n_iter:>14d}", f"{row['loss']:>14.6e}"]
        for name in self.columns:
            value = row.get(name, np.nan)
            if isinstance(value, (int, np.integer)):
                cells.append(f"{value:>14d}")
            else:
                cells.append(f"{value:>14.6g}")
        cells.append(f"{row['seconds']:>14.2f}")
        self._write(f"[{self.estimator_name}] {' '.join(cells)}")

    def _write(self, line):
        stream = sys.stdout if self.stream is None else self.stream
        print(line, file=stream, flush=True)


@dataclass
class OptimizeResult:
    """What :func:`minimize_lbfgs` returns."""

    x: np.ndarray
    loss: float
    n_iter: int
    converged: bool
    message: str


def minimize_lbfgs(fun, x0, *, max_iter, tol, log, shape, ftol=None):
    """Minimise ``fun`` with L-BFGS-B, logging every iteration.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (loss, grad, extras)`` with ``x`` and ``grad`` flat
        float64 arrays and ``extras`` a dict of the log's extra columns.
    x0 : ndarray
        Starting point (any shape; it is flattened).
    max_iter : int
        The most iterations.
    tol : float
        Convergence when the largest gradient entry falls below ``tol``
        (SciPy's ``gtol``).
    log : IterationLog
        Receives one record per iteration.
    shape : tuple of int
        Shape of the parameter matrix, to hand the callback a matrix.
    ftol : float, optional
        Convergence when the relative decrease of the loss in one iteration
        falls below ``ftol``; SciPy's default when None.

    Returns
    -------
    result : OptimizeResult
        ``converged`` is False when the run stopped at ``max_iter`` or the
        line search failed; the log then warns.
    """
    last = {}

    def wrapped(x):
        loss, grad, extras = fun(x)
        last.update(x=x.copy(), loss=loss, extras=extras)
        return loss, np.asarray(grad, dtype=np.float64).ravel()

    n_iter = 0

    def on_iteration(intermediate_result):
        nonlocal n_iter
        n_iter += 1
        x = intermediate_result.x
        if "x" in last and np.array_equal(x, last["x"]):
            loss, extras = last["loss"], last["extras"]
        else:
            loss, _, extras = fun(x)
        log.record(n_iter, loss, x.reshape(shape), **extras)

    options = {"maxiter": max_iter, "gtol": tol}
    if ftol is not None:
        options["ftol"] = ftol
    result = minimize(
        wrapped,
        np.asarray(x0, dtype=np.float64).ravel(),
        method="L-BFGS-B",
        jac=True,
        callback=on_iteration,
        options=options,
    )
    converged = bool(result.success)
    message = str(result.message)
    log.finish(converged, None if converged else message)
    return OptimizeResult(
        x=result.x.reshape(shape),
        loss=float(result.fun),
        n_iter=int(result.nit),
        converged=converged,
        message=message,
    )
