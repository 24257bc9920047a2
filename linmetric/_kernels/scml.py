"""SCML's stochastic steps: AdaGrad regularised dual averaging on triplets.

For a triplet ``(a, b, c)`` and basis projections ``p`` of the points, the
hinge argument is ``1 + z^T w`` with
``z_k = ((p_a,k - p_b,k)^2 - (p_a,k - p_c,k)^2) / scale``. One step draws a
mini-batch, sums ``z`` over the triplets with a positive hinge (the
subgradient ``g``), and sets in closed form::

    gsum += g;  H2 += g * g
    w_k = gamma t / (delta + sqrt(H2_k)) * max(0, -gsum_k / t - beta)

Each step costs ``O(batch_size * n_basis)``; run in NumPy it is dominated by
the per-step overhead of a dozen array calls, here by the arithmetic. The
batches are drawn by the caller, so the path is the NumPy one up to the
order of the sums.
"""

import numpy as np

from ._config import jit


@jit
def rda_steps(
    projections, triplets, batches, scale, weights, gradient_sum, squared_sum,
    first_step, beta, gamma, delta,
):  # fmt: skip
    """Run ``len(batches)`` RDA steps in place; return the summed batch objectives.

    Parameters
    ----------
    projections : ndarray of shape (n_points, n_basis), float64
    triplets : ndarray of shape (n_triplets, 3), intp
    batches : ndarray of shape (n_steps, batch_size), intp
        Rows of ``triplets``, one batch per step.
    scale : float
        Divides every ``z``.
    weights, gradient_sum, squared_sum : ndarray of shape (n_basis,), float64
        ``w``, ``gsum`` and ``H2``, updated in place.
    first_step : int
        Number of steps done before (``t`` of the first step is one more).
    beta, gamma, delta : float

    Returns
    -------
    loss : float
        The sum over the steps of the batch objective
        ``mean [1 + z^T w]_+ + beta sum(w)`` (``w`` before the step).
    """
    n_steps, batch_size = batches.shape
    n_basis = projections.shape[1]
    row = np.empty(n_basis)
    gradient = np.empty(n_basis)
    total = 0.0
    for step in range(n_steps):
        t = first_step + step + 1
        gradient[:] = 0.0
        hinge = 0.0
        for r in range(batch_size):
            triplet = batches[step, r]
            a = triplets[triplet, 0]
            b = triplets[triplet, 1]
            c = triplets[triplet, 2]
            margin = 1.0
            for k in range(n_basis):
                near = projections[a, k] - projections[b, k]
                far = projections[a, k] - projections[c, k]
                z = (near * near - far * far) / scale
                row[k] = z
                margin += z * weights[k]
            if margin > 0.0:
                hinge += margin
                for k in range(n_basis):
                    gradient[k] += row[k]
        l1 = 0.0
        for k in range(n_basis):
            l1 += weights[k]
        total += hinge / batch_size + beta * l1
        for k in range(n_basis):
            g = gradient[k] / batch_size
            gradient_sum[k] += g
            squared_sum[k] += g * g
            shrunk = -gradient_sum[k] / t - beta
            if shrunk > 0.0:
                weights[k] = gamma * t / (delta + np.sqrt(squared_sum[k])) * shrunk
            else:
                weights[k] = 0.0
    return total
