"""Positive (semi-)definite matrices: checks, and the map L from M = L^T L."""

import numpy as np
from scipy import linalg
from sklearn.utils.validation import check_array


def rank_tolerance(eigenvalues, *, dtype=np.float64, size=None):
    """The one rule for numerical rank: which eigenvalues count as zero.

    An eigenvalue ``w`` of a symmetric matrix is zero when
    ``|w| <= size * eps(dtype) * max|eigenvalues|``: the rounding error of an
    eigendecomposition of a ``size x size`` matrix stored in ``dtype`` is
    about ``size * eps`` times its largest eigenvalue, so smaller values
    cannot be told from zero. The rule is relative, so that it does not
    depend on the units of the data.

    Parameters
    ----------
    eigenvalues : array-like
        The spectrum (any order).
    dtype : dtype, default=np.float64
        The precision the matrix was computed in.
    size : int, optional
        Size of the matrix (or the larger dimension of the data it comes
        from); defaults to ``len(eigenvalues)``.

    Returns
    -------
    tol : float
        0 for an empty or all-zero spectrum.
    """
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    if eigenvalues.size == 0:
        return 0.0
    size = eigenvalues.size if size is None else size
    largest = float(np.max(np.abs(eigenvalues)))
    return max(size, 1) * float(np.finfo(dtype).eps) * largest


def numerical_rank(eigenvalues, *, dtype=np.float64, size=None):
    """Number of eigenvalues above :func:`rank_tolerance`."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    tol = rank_tolerance(eigenvalues, dtype=dtype, size=size)
    return int(np.count_nonzero(eigenvalues > tol))


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
        negative ones raise. Defaults to :func:`rank_tolerance` in the
        dtype of ``M``.

    Returns
    -------
    L : ndarray of shape (n_features, n_features)
        In the dtype of ``M`` (float32 or float64).
    """
    M = check_array(M, dtype=(np.float64, np.float32), input_name="M")
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"M must be a square matrix; got shape {M.shape}.")
    M = (M + M.T) / 2
    # Work in units of the largest entry, so that neither the Cholesky
    # factor nor the eigenvalues over- or underflow, whatever the scale of M.
    scale = float(np.abs(M).max()) if M.size else 0.0
    if scale == 0.0:
        return np.zeros_like(M)
    unit = M / M.dtype.type(scale)
    root = np.sqrt(scale)
    try:
        factor = linalg.cholesky(unit, lower=False)
        return np.ascontiguousarray(factor * root, dtype=M.dtype)
    except linalg.LinAlgError:
        pass
    w, V = linalg.eigh(unit)
    if tol is None:
        tol = rank_tolerance(w, dtype=M.dtype)
    else:
        tol = tol / scale
    if w[0] < -tol:
        raise ValueError(
            "M is not positive semi-definite: its smallest eigenvalue is "
            f"{w[0] * scale:.3g}."
        )
    # Eigenvalues within rounding of zero are zero: they set the rank.
    w = np.where(w > tol, w, 0.0)
    L = (np.sqrt(w)[:, None] * V.T)[::-1] * root
    return np.ascontiguousarray(L, dtype=M.dtype)


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
