"""Positive (semi-)definite matrices: checks, and the map L from M = L^T L."""

import numpy as np
from scipy import linalg
from sklearn.utils.validation import check_array


def components_from_metric(M, *, tol=None):
    """A linear map ``L`` with ``L.T @ L == M`` for a PSD matrix ``M``.

    The Cholesky factor is used when ``M`` is positive definite (fast and
    exact). A singular ``M`` falls back to the eigendecomposition
    ``M = V diag(w) V^T`` and ``L = diag(sqrt(w)) V^T``: directions with a zero
    eigenvalue become zero rows of ``L``, so the rank of ``L`` is the rank of
    ``M``.

    Parameters
    ----------
    M : array-like of shape (n_features, n_features)
        Symmetric positive semi-definite matrix.
    tol : float, optional
        Eigenvalues in ``[-tol, tol]`` count as zero (rounding); more
        negative ones raise. Defaults to ``n_features * eps * max|w|``.

    Returns
    -------
    L : ndarray of shape (n_features, n_features)
        In the dtype of ``M`` (float32 or float64).
    """
    M = check_array(M, dtype=(np.float64, np.float32), input_name="M")
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"M must be a square matrix; got shape {M.shape}.")
    M = (M + M.T) / 2
    try:
        return np.ascontiguousarray(linalg.cholesky(M, lower=False))
    except linalg.LinAlgError:
        pass
    w, V = linalg.eigh(M)
    if tol is None:
        tol = M.shape[0] * np.finfo(M.dtype).eps * max(np.abs(w).max(), 1e-300)
    if w[0] < -tol:
        raise ValueError(
            f"M is not positive semi-definite: its smallest eigenvalue is {w[0]:.3g}."
        )
    # Eigenvalues within rounding of zero are zero: they set the rank.
    w = np.where(w > tol, w, 0.0)
    return np.ascontiguousarray((np.sqrt(w)[:, None] * V.T)[::-1], dtype=M.dtype)


def check_spd(M, *, param_name, n_features=None):
    """Validate a symmetric positive definite matrix given as a parameter.

    Parameters
    ----------
    M : array-like of shape (n_features, n_features)
    param_name : str
        Name of the parameter, used in error messages.
    n_features : int, optional
        The expected size.

    Returns
    -------
    M : ndarray of shape (n_features, n_features), float64
    """
    M = check_array(M, dtype=np.float64, input_name=param_name)
    if M.shape[0] != M.shape[1] or (
        n_features is not None and M.shape[0] != n_features
    ):
        expected = "square" if n_features is None else f"({n_features}, {n_features})"
        raise ValueError(
            f"{param_name} must have shape {expected}; got shape {M.shape}."
        )
    scale = max(np.abs(M).max(), np.finfo(float).tiny)
    if not np.allclose(M, M.T, rtol=0, atol=1e-10 * scale):
        raise ValueError(f"{param_name} must be symmetric; it is not.")
    try:
        linalg.cholesky(M, lower=True)
    except linalg.LinAlgError:
        smallest = linalg.eigvalsh(M)[0]
        raise ValueError(
            f"{param_name} must be positive definite; its smallest eigenvalue "
            f"is {smallest:.3g}."
        ) from None
    return (M + M.T) / 2
