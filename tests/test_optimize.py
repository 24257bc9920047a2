import io

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der
from sklearn.exceptions import ConvergenceWarning

from linmetric._optimize import (
    IterationLog,
    iterate,
    minimize_lbfgs,
    minimize_subgradient,
)


def quadratic(x):
    """f(x) = ||x - 3||^2 with one extra column for the log."""
    return float(np.sum((x - 3.0) ** 2)), 2 * (x - 3.0), {"active": 2}


def test_lbfgs_converges_and_logs_every_iteration():
    calls = []
    stream = io.StringIO()
    log = IterationLog(
        "Quad",
        verbose=1,
        callback=lambda components, n_iter: calls.append((components.shape, n_iter)),
        columns=("active",),
        stream=stream,
    )
    result = minimize_lbfgs(
        quadratic, np.zeros((2, 3)), max_iter=50, tol=1e-10, log=log, shape=(2, 3)
    )
    assert result.converged
    np.testing.assert_allclose(result.x, 3.0)
    assert result.x.shape == (2, 3)
    assert len(log.loss_curve) == result.n_iter
    assert [n for _, n in calls] == list(range(1, result.n_iter + 1))
    assert all(shape == (2, 3) for shape, _ in calls)
    history = log.history
    assert set(history) == {"loss", "active", "seconds"}
    assert np.all(history["active"] == 2)
    assert np.all(np.diff(history["seconds"]) >= 0)
    text = stream.getvalue()
    assert "[Quad]" in text and "Iteration" in text and "Active" in text
    assert "converged after" in text


def test_stopping_at_max_iter_warns_even_when_silent():
    def rosenbrock(x):
        a, b = x
        loss = (1 - a) ** 2 + 100 * (b - a**2) ** 2
        grad = np.array([-2 * (1 - a) - 400 * a * (b - a**2), 200 * (b - a**2)])
        return loss, grad, {}

    log = IterationLog("Rosen", verbose=0)
    with pytest.warns(ConvergenceWarning, match="Rosen did not converge.*max_iter"):
        result = minimize_lbfgs(
            rosenbrock,
            np.array([-1.5, 2.0]),
            max_iter=3,
            tol=1e-12,
            log=log,
            shape=(2,),
        )
    assert not result.converged
    assert result.n_iter == 3


def test_unknown_history_column_is_rejected():
    log = IterationLog("X", columns=("a",))
    with pytest.raises(KeyError, match="unknown history columns"):
        log.record(1, 0.0, b=1)


def test_silent_log_prints_nothing(capsys):
    log = IterationLog("Quiet")
    log.record(1, 1.0)
    log.finish(True)
    assert capsys.readouterr().out == ""


def absolute(x):
    """f(x) = sum |x|, with a subgradient."""
    return float(np.abs(x).sum()), np.sign(x), {}


def test_subgradient_rejects_steps_that_raise_the_loss():
    # From x = 0.004 the first step (0.01) overshoots to -0.006, a higher
    # loss: it must be rejected and the step halved.
    calls = []

    def fun(x):
        calls.append(float(x[0]))
        return absolute(x)

    log = IterationLog("Abs")
    result = minimize_subgradient(
        fun, np.array([0.004]), max_iter=20, tol=1e-3, log=log, shape=(1,)
    )
    assert calls[1] == pytest.approx(-0.006)  # tried, and rejected
    assert calls[2] == pytest.approx(-0.001)  # the halved step
    curve = np.concatenate([[0.004], log.loss_curve])
    assert np.all(np.diff(curve) <= 0)
    assert result.n_iter == log.n_iter >= 1
    assert len(calls) > result.n_iter + 1  # some evaluations were rejected steps
    assert result.initial_loss == pytest.approx(0.004)
    assert result.loss < 0.004


def test_subgradient_converges_and_warns_at_max_iter():
    log = IterationLog("Abs")
    result = minimize_subgradient(
        absolute, np.array([3.0, -2.0]), max_iter=5000, tol=1e-6, log=log, shape=(2,)
    )
    assert result.converged and result.loss < 1e-3
    with pytest.warns(ConvergenceWarning, match="Abs did not converge"):
        result = minimize_subgradient(
            absolute,
            np.array([3.0]),
            max_iter=2,
            tol=0.0,
            log=IterationLog("Abs"),
            shape=(1,),
        )
    assert not result.converged and result.n_iter == 2


def test_stages_share_one_log_numbering_and_one_report():
    stream = io.StringIO()
    seen = []
    log = IterationLog(
        "Quad",
        verbose=1,
        callback=lambda components, n_iter: seen.append(n_iter),
        columns=("active",),
        stream=stream,
    )
    first = minimize_lbfgs(
        quadratic, np.zeros(3), max_iter=1, tol=1e-10, log=log, shape=(3,), finish=False
    )
    assert not first.converged and log.n_iter == 1
    assert first.initial_loss == pytest.approx(27.0)
    log.note("stage 2")
    second = minimize_lbfgs(
        quadratic, first.x, max_iter=50, tol=1e-10, log=log, shape=(3,), finish=False
    )
    assert seen == list(range(1, log.n_iter + 1))
    assert "did not converge" not in stream.getvalue()  # held back
    assert "[Quad] stage 2" in stream.getvalue()
    log.finish(second.converged)
    assert "converged after" in stream.getvalue()
    assert not first.loss_rose and not second.loss_rose


def test_a_rising_loss_is_reported_as_data():
    # an objective that changes under the optimiser (as a working set does)
    state = {"calls": 0}

    def drifting(x):
        state["calls"] += 1
        offset = 0.0 if state["calls"] < 6 else 100.0
        return rosen(x) + offset, rosen_der(x), {}

    result = minimize_lbfgs(
        drifting,
        np.zeros(3),
        max_iter=20,
        tol=1e-10,
        log=IterationLog("Q"),
        shape=(3,),
        finish=False,
    )
    assert result.loss_rose


def test_iterate_runs_a_custom_rule_until_it_converges():
    state = {"x": 8.0}

    def halve():
        state["x"] /= 2
        return state["x"], None, {"active": 1}, state["x"] < 1, "x still large"

    log = IterationLog("Halve", columns=("active",))
    log.record(1, 16.0)  # an earlier stage
    result = iterate(halve, max_iter=10, log=log)
    assert result.converged and result.n_iter == 4 and log.n_iter == 5
    np.testing.assert_array_equal(log.loss_curve, [16, 4, 2, 1, 0.5])
    state["x"] = 8.0
    with pytest.warns(ConvergenceWarning, match="x still large"):
        result = iterate(
            halve, max_iter=2, log=IterationLog("Halve", columns=("active",))
        )
    assert not result.converged and result.n_iter == 2
