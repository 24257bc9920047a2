"""Geometric Mean Metric Learning, Zadeh, Hosseini and Sra (2016), in NumPy.

GMML solves (eq. 3 with the weighted form of section 3.2)::

    min_{A SPD}  tr(A S) + tr(A^-1 D)
    S = sum_{(i,j) in similar}    (x_i - x_j)(x_i - x_j)^T
    D = sum_{(i,j) in dissimilar} (x_i - x_j)(x_i - x_j)^T

whose solution is the midpoint of the geodesic from ``S^-1`` to ``D``, and
in general the point ``t`` of it, the weighted geometric mean::

    A = S^-1 #_t D,   P #_t Q = P^1/2 (P^-1/2 Q P^-1/2)^t P^1/2.

With ``lambda`` times the symmetrised LogDet divergence to a prior ``A0``
added to the objective, the solution stays a geometric mean (section 3.3)::

    A = (S + lambda A0^-1)^-1 #_t (D + lambda A0).

This module writes the formulas with general matrix functions (square roots
and fractional powers): slow and less stable on purpose. The fast version is
:class:`linmetric.GMML`, which uses eigendecompositions, means instead of
sums, and rescales the data to unit mean eigenvalue first
(:func:`rescaled_gmml_metric` below spells that convention out).

References
----------
P. Zadeh, R. Hosseini and S. Sra, "Geometric mean metric learning",
ICML 2016.
"""

import numpy as np
from scipy.linalg import fractional_matrix_power, inv, sqrtm


def geometric_mean(P, Q, t):
    """``P #_t Q = P^1/2 (P^-1/2 Q P^-1/2)^t P^1/2``."""
    P_half = np.real(sqrtm(P))
    P_inv_half = inv(P_half)
    middle = P_inv_half @ Q @ P_inv_half
    middle = np.real(fractional_matrix_power((middle + middle.T) / 2, t))
    return P_half @ middle @ P_half


def gmml_metric(S, D, t=0.5, lam=0.0, A0=None):
    """``A = (S + lambda A0^-1)^-1 #_t (D + lambda A0)``."""
    if A0 is None:
        A0 = np.eye(S.shape[0])
    return geometric_mean(inv(S + lam * inv(A0)), D + lam * A0, t)


def rescaled_gmml_metric(S, D, t=0.5, lam=0.0, A0=None):
    """GMML after dividing ``S`` and ``D`` by ``sigma^2 = tr(S + D) / 2d``.

    The prior is the same metric in the rescaled units, ``sigma^2 A0``, and
    the result is mapped back to the data's units (divided by
    ``sigma^2``).
    """
    sigma2 = np.trace(S + D) / (2 * S.shape[0])
    A0 = np.eye(S.shape[0]) if A0 is None else sigma2 * A0
    return gmml_metric(S / sigma2, D / sigma2, t, lam, A0) / sigma2
