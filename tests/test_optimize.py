import io

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from linmetric._optimize import IterationLog, minimize_lbfgs


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
