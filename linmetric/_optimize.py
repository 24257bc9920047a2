"""The optimizer driver shared by the iterative learners.

Objectives are pure functions; this module owns everything around them:
the iteration loops (L-BFGS-B, subgradient descent), iteration counting
across the stages or passes of one fit, the user's callback, the verbose
table and notes, the per-iteration history and the ``ConvergenceWarning``.

A fit made of several optimiser runs (passes, stages, restarts) hands the
same :class:`IterationLog` to each run with ``finish=False``: iterations
are numbered after those already recorded, each run's outcome comes back
as data in its :class:`OptimizeResult`, and the fit reports once, with
:meth:`IterationLog.finish`, when it knows the overall outcome.
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

    @property
    def n_iter(self):
        """int, iterations recorded so far."""
        return len(self._values["loss"])

    def note(self, message):
        """Print ``message`` under the estimator's name when verbose."""
        if self.verbose:
            self._write(f"[{self.estimator_name}] {message}")

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
    """What :func:`minimize_lbfgs` and :func:`minimize_subgradient` return.

    ``n_iter`` counts this run's iterations only; ``initial_loss`` is the
    loss at the starting point; ``loss_rose`` says whether the recorded loss
    ever increased from one iteration to the next, which neither method
    allows on an exact objective (an objective that is only exact on a
    working set, such as LMNN's candidate impostors, shows it missed
    something that way).
    """

    x: np.ndarray
    loss: float
    n_iter: int
    converged: bool
    message: str
    initial_loss: float = np.nan
    loss_rose: bool = False


def _loss_rose(losses):
    return bool(np.any(np.diff(np.asarray(losses, dtype=float)) > 0))


def minimize_lbfgs(fun, x0, *, max_iter, tol, log, shape, ftol=None, finish=True):
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
    finish : bool, default=True
        Report the outcome through ``log.finish`` (and so warn when not
        converged). False for one run among several of a fit, which then
        calls ``log.finish`` itself. Iterations are numbered after those
        ``log`` holds already either way.

    Returns
    -------
    result : OptimizeResult
        ``converged`` is False when the run stopped at ``max_iter`` or the
        line search failed; the log then warns.
    """
    last = {}
    losses = []

    def wrapped(x):
        loss, grad, extras = fun(x)
        last.update(x=x.copy(), loss=loss, extras=extras)
        if not losses:
            losses.append(float(loss))
        return loss, np.asarray(grad, dtype=np.float64).ravel()

    offset = log.n_iter
    n_iter = 0

    def on_iteration(intermediate_result):
        nonlocal n_iter
        n_iter += 1
        x = intermediate_result.x
        if "x" in last and np.array_equal(x, last["x"]):
            loss, extras = last["loss"], last["extras"]
        else:
            loss, _, extras = fun(x)
        losses.append(float(loss))
        log.record(offset + n_iter, loss, x.reshape(shape), **extras)

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
    if finish:
        log.finish(converged, None if converged else message)
    return OptimizeResult(
        x=result.x.reshape(shape),
        loss=float(result.fun),
        n_iter=int(result.nit),
        converged=converged,
        message=message,
        initial_loss=losses[0] if losses else np.nan,
        loss_rose=_loss_rose(losses[1:]),
    )


def iterate(step, *, max_iter, log, finish=True):
    """Run a custom update rule, one iteration per call of ``step``.

    For learners whose iteration is not a gradient step (projections,
    coordinate sweeps): the rule keeps its own state, the driver counts,
    records and reports.

    Parameters
    ----------
    step : callable
        ``step() -> (loss, components, extras, converged, message)``: one
        iteration. ``components`` is handed to the callback (None when the
        rule has no cheap map to show), ``extras`` a dict of the log's
        extra columns, ``converged`` whether the stopping rule is met, and
        ``message`` why not (used if this is the last iteration).
    max_iter : int
        The most iterations.
    log, finish
        As in :func:`minimize_lbfgs`.

    Returns
    -------
    result : OptimizeResult
        ``x`` is the last ``components``.
    """
    offset = log.n_iter
    losses = []
    components, converged, message = None, False, f"reached max_iter={max_iter}"
    n_iter = 0
    while n_iter < max_iter:
        loss, components, extras, converged, message = step()
        n_iter += 1
        losses.append(float(loss))
        log.record(offset + n_iter, loss, components, **extras)
        if converged:
            break
    if finish:
        log.finish(converged, None if converged else message)
    return OptimizeResult(
        x=components,
        loss=losses[-1] if losses else np.nan,
        n_iter=n_iter,
        converged=converged,
        message=message,
        loss_rose=_loss_rose(losses),
    )


# Subgradient descent with the step-size adaptation of Weinberger and Saul
# (2009): the first step moves x by this fraction of max(||x||, 1) ...
SUBGRADIENT_FIRST_STEP = 0.01
# ... grows by this factor after each accepted step ...
SUBGRADIENT_STEP_GROWTH = 1.01
# ... and shrinks by this factor, the step being rejected, whenever the loss
# would increase.
SUBGRADIENT_STEP_SHRINK = 0.5
# The run ends, converged, when a step would move x by less than this
# fraction of max(||x||, 1): no step along the subgradient lowers the loss.
SUBGRADIENT_MIN_STEP = 1e-12
# Converged when the loss fell by less than tol per iteration (relative),
# on average over this many iterations.
SUBGRADIENT_WINDOW = 5


def minimize_subgradient(fun, x0, *, max_iter, tol, log, shape, finish=True):
    """Minimise a non-smooth ``fun`` by subgradient descent.

    The step grows by ``SUBGRADIENT_STEP_GROWTH`` after each accepted step
    and is multiplied by ``SUBGRADIENT_STEP_SHRINK``, the step being
    rejected, whenever the loss would increase; only accepted steps count
    as iterations, so the recorded loss never increases.

    Parameters
    ----------
    fun, x0, max_iter, log, shape, finish
        As in :func:`minimize_lbfgs`; ``grad`` is any subgradient.
    tol : float
        Converged when the loss fell by less than
        ``SUBGRADIENT_WINDOW * tol`` times its magnitude (at least 1) over
        the last ``SUBGRADIENT_WINDOW`` iterations.

    Returns
    -------
    result : OptimizeResult
    """
    x = np.asarray(x0, dtype=np.float64).ravel()
    loss, grad, _ = fun(x)
    grad = np.asarray(grad, dtype=np.float64).ravel()
    initial_loss = float(loss)
    grad_norm = np.linalg.norm(grad)
    step = (
        SUBGRADIENT_FIRST_STEP * max(np.linalg.norm(x), 1.0) / grad_norm
        if grad_norm > 0
        else 0.0
    )
    recent = [loss]
    offset = log.n_iter
    n_iter = 0
    converged, message = False, f"reached max_iter={max_iter}"
    while n_iter < max_iter:
        if step * np.linalg.norm(grad) <= SUBGRADIENT_MIN_STEP * max(
            np.linalg.norm(x), 1.0
        ):
            converged, message = True, "no step along the subgradient lowers the loss"
            break
        candidate = x - step * grad
        new_loss, new_grad, new_extras = fun(candidate)
        if new_loss > loss:
            step *= SUBGRADIENT_STEP_SHRINK
            continue
        x, loss = candidate, new_loss
        grad = np.asarray(new_grad, dtype=np.float64).ravel()
        step *= SUBGRADIENT_STEP_GROWTH
        n_iter += 1
        log.record(offset + n_iter, loss, x.reshape(shape), **new_extras)
        recent.append(loss)
        if len(recent) > SUBGRADIENT_WINDOW + 1:
            recent.pop(0)
            decrease = recent[0] - recent[-1]
            if decrease <= SUBGRADIENT_WINDOW * tol * max(abs(recent[-1]), 1.0):
                converged, message = True, "relative decrease below tol"
                break
    if finish:
        log.finish(converged, None if converged else message)
    return OptimizeResult(
        x=x.reshape(shape),
        loss=float(loss),
        n_iter=n_iter,
        converged=converged,
        message=message,
        initial_loss=initial_loss,
    )
