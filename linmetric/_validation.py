"""Input validation shared by every learner.

Everything a learner receives passes through here once, at the boundary:
afterwards the arrays are dense, 2-D, finite, C-contiguous and float32 or
float64, so the kernels never have to check again.
"""

import numbers

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, validate_data

FLOAT_DTYPES = (np.float64, np.float32)
# What every array of points is checked for (arguments of check_array and
# validate_data): dense, finite, C-contiguous float32 (kept) or float64.
DENSE_FLOATS = {
    "accept_sparse": False,
    "dtype": FLOAT_DTYPES,
    "order": "C",
    "ensure_all_finite": True,
}


def validate_X(estimator, X, *, reset=True, ensure_min_samples=1):
    """Validate the feature matrix of ``fit`` or ``transform``.

    Parameters
    ----------
    estimator : estimator instance
        The learner; with ``reset=True`` its ``n_features_in_`` and
        ``feature_names_in_`` are set, otherwise X is checked against them.
    X : array-like of shape (n_samples, n_features)
        Dense, finite data. float32 is kept; anything else becomes float64.
    reset : bool, default=True
        True in ``fit``, False in ``transform``.
    ensure_min_samples : int, default=1
        The fewest samples accepted.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous float32 or float64 copy or view of the input.
    """
    # Data that are already what validate_data returns (the same array) skip
    # its generic machinery (dataframe detection, tags, array namespaces:
    # about a tenth of a millisecond, far more than the finiteness check);
    # anything else, and every error or warning, goes through it.
    if _is_ready(X, 2, min_rows=max(ensure_min_samples, 1)) and X.shape[1] > 0:
        if reset:
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
            estimator.n_features_in_ = X.shape[1]
            return X
        if (
            getattr(estimator, "feature_names_in_", None) is None
            and getattr(estimator, "n_features_in_", X.shape[1]) == X.shape[1]
        ):
            return X
    return validate_data(
        estimator,
        X,
        reset=reset,
        ensure_min_samples=ensure_min_samples,
        **DENSE_FLOATS,
    )


def _is_ready(array, ndim, *, min_rows=1, finite=True):
    """Whether ``array`` passes the checks of points unchanged.

    A C-contiguous float32 or float64 ndarray (not a subclass) of ``ndim``
    dimensions and at least ``min_rows`` rows, with a finite sum when
    ``finite``: a finite sum means finite entries, and one that overflows
    sends the array through the full check, entry by entry.
    """
    if not (
        type(array) is np.ndarray
        and array.ndim == ndim
        and array.dtype in FLOAT_DTYPES
        and array.flags.c_contiguous
        and array.shape[0] >= min_rows
    ):
        return False
    if not finite:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.sum()))


def validate_X_y(estimator, X, y, *, min_class_size=1, min_class_size_param=None):
    """Validate labelled training data and encode the labels.

    Parameters
    ----------
    estimator : estimator instance
        The learner being fitted; its ``n_features_in_`` is set.
    X : array-like of shape (n_samples, n_features)
        Dense, finite data.
    y : array-like of shape (n_samples,)
        Class labels; at least two distinct classes are required.
    min_class_size : int, default=1
        The fewest members a class may have.
    min_class_size_param : tuple (name, value), optional
        The parameter that sets ``min_class_size``, named in the error
        message (for example ``("n_neighbors", 3)``).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous float32 or float64 data.
    y_codes : ndarray of shape (n_samples,), dtype intp
        ``classes[y_codes] == y``.
    classes : ndarray of shape (n_classes,)
        The sorted distinct labels.
    """
    if (
        _is_ready(X, 2)
        and X.shape[1] > 0
        and type(y) is np.ndarray
        and y.ndim == 1
        and y.dtype.kind in "iu"
        and y.shape[0] == X.shape[0]
    ):
        # Ready data and integer labels, which scikit-learn's checks would
        # return as they are and find to be classes: only what they set on
        # the estimator, and their warning of labels that look continuous.
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        estimator.n_features_in_ = X.shape[1]
        classes, y_codes = _label_codes(y)
        n_samples, n_classes = y.shape[0], classes.shape[0]
        if n_classes > 2 and n_samples > 20 and n_classes > round(0.5 * n_samples):
            check_classification_targets(y)
    else:
        X, y = validate_data(estimator, X, y, y_numeric=False, **DENSE_FLOATS)
        _check_label_types(y)
        check_classification_targets(y)
        classes, y_codes = np.unique(y, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError(
            f"y has only one class ({_plain(classes[0])!r}); metric learning from "
            "labels needs at least two classes."
        )
    counts = np.bincount(y_codes, minlength=classes.shape[0])
    smallest = int(np.argmin(counts))
    if counts[smallest] < min_class_size:
        if min_class_size_param is None:
            rule = f"at least {min_class_size} samples per class are required"
        else:
            name, value = min_class_size_param
            rule = (
                f"with {name}={value!r} every class needs at least "
                f"{min_class_size} samples"
            )
        raise ValueError(
            f"Class {_plain(classes[smallest])!r} has {counts[smallest]} sample(s), but {rule}."
        )
    return X, y_codes.astype(np.intp, copy=False), classes


def _label_codes(y):
    """``np.unique(y, return_inverse=True)`` for integer labels.

    Labels in a range of at most a few times their number are coded by
    counting (linear time) instead of sorting.
    """
    low, high = int(y.min()), int(y.max())
    if high - low > 4 * y.shape[0] + 64 or y.dtype == np.uint64:
        return np.unique(y, return_inverse=True)
    shifted = y.astype(np.intp, copy=False)
    if low != 0:
        shifted = shifted - low
    present = np.bincount(shifted, minlength=high - low + 1) > 0
    codes = np.cumsum(present) - 1
    return np.flatnonzero(present).astype(y.dtype) + low, codes[shifted]


def centred_in_units(X):
    """X minus its mean, divided by a power of two near its spread.

    Learners whose result does not depend on translation, and only scales
    with the data, fit on these units: products and traces of data at any
    finite scale (1e-200 or 1e200) neither overflow nor underflow, and
    distances computed from the centred data keep their digits far from the
    origin. Dividing by a power of two changes no digit, so a map ``L``
    learned in these units is ``np.ldexp(L, -exponent)`` in the units of X
    (and a matrix ``M`` in squared units, ``np.ldexp(M, -2 * exponent)``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64

    Returns
    -------
    centred : ndarray of shape (n_samples, n_features)
        ``(X - mean) / 2**exponent`` in the dtype of X (computed in float64),
        largest absolute entry in [0.5, 1); zeros for constant data.
    exponent : int
        0 for constant data.
    """
    X64 = np.asarray(X, dtype=np.float64)
    if X64.size == 0:
        return np.zeros_like(X), 0
    # First to the scale of the largest entry, so that the mean of data near
    # the float64 limit does not overflow; then to the spread about the mean.
    # (The largest absolute entry from the extremes: no array of absolute
    # values. Scaling by a power of two in place gives the same numbers.)
    outer = _exponent(_largest_magnitude(X64))
    if outer is None:  # all zeros
        return np.zeros_like(X), 0
    centred = _times_power_of_two(X64, -outer)
    centred -= centred.mean(axis=0)
    inner = _exponent(_largest_magnitude(centred))
    if inner is None:
        return np.zeros_like(X), 0
    centred = _times_power_of_two(centred, -inner, out=centred)
    return np.ascontiguousarray(centred, dtype=X.dtype), outer + inner


def _largest_magnitude(array):
    """``np.abs(array).max()`` for a non-empty array without NaN."""
    return max(array.max(), -array.min())


def _times_power_of_two(array, exponent, out=None):
    """``np.ldexp(array, exponent, out=out)``, by a product where it is the same.

    A product by a power of two that is itself a normal float64 is rounded
    like ``ldexp``'s result (both are the exact value, correctly rounded), and
    takes half the time.
    """
    if -1022 <= exponent <= 1023:
        return np.multiply(array, 2.0**exponent, out=out)
    return np.ldexp(array, exponent, out=out)


def differences_in_units(first, second):
    """``first - second`` in float64, divided by a power of two near its largest entry.

    For learners that see the data only through differences of points
    (pairs, quadruplets), which do not depend on a shift of the data: no
    centring pass is needed. Dividing by a power of two changes no digit, so
    a map ``L`` learned in these units is ``np.ldexp(L, -exponent)`` in the
    units of the data, as with :func:`centred_in_units`.

    Parameters
    ----------
    first, second : ndarray of the same shape, float32 or float64

    Returns
    -------
    diffs : ndarray, float64, C-contiguous
        Largest absolute entry in [0.5, 1); zeros if ``first == second``.
    exponent : int
        0 when every difference is zero.
    """
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        diffs = np.subtract(first, second)
        largest = max(diffs.max(), -diffs.min()) if diffs.size else 0.0
    outer = 0
    if not np.isfinite(largest):
        # Points near the float64 limit: difference them in their own units.
        outer = _exponent(max(np.abs(first).max(), np.abs(second).max()))
        diffs = np.ldexp(first, -outer) - np.ldexp(second, -outer)
        largest = max(diffs.max(), -diffs.min())
    inner = _exponent(largest)
    if inner is None:
        return np.ascontiguousarray(diffs), 0
    diffs = _times_power_of_two(diffs, -inner, out=diffs)
    return np.ascontiguousarray(diffs), outer + inner


def _exponent(spread):
    """``e`` with ``spread / 2**e`` in [0.5, 1); None for 0."""
    return int(np.frexp(spread)[1]) if spread > 0 else None


def _check_label_types(y):
    """Labels must be all strings or all numbers, so that they can be sorted."""
    if y.dtype != object:
        return
    kinds = set()
    for label in y:
        if label is None:
            raise ValueError("y contains None; every sample needs a class label.")
        kinds.add("str" if isinstance(label, str) else type(label).__name__)
        if isinstance(label, (str, bytes)) or not isinstance(
            label, (numbers.Number, np.generic)
        ):
            kinds.add("non-number")
        else:
            kinds.add("number")
        if "number" in kinds and "non-number" in kinds:
            names = sorted(kinds - {"number", "non-number"})
            raise ValueError(
                "y mixes labels of different types (" + " and ".join(names) + "); "
                "use labels of one type, all strings or all numbers."
            )


def check_points(points, name, *, dtype=FLOAT_DTYPES, finite=True):
    """``points`` as a finite, C-contiguous float array of any shape.

    For tuples of points, whose shape the caller checks; ``name`` is the
    parameter named in messages. ``finite=False`` skips the finiteness
    check, for a caller that detects non-finite values in a pass of its own
    and then calls again with ``finite=True`` for the error.

    Tuples that are already what this returns (a C-contiguous float32 or
    float64 ndarray of at least one tuple) skip scikit-learn's generic
    checks, a large share of a small fit; anything else, and every error,
    goes through them.
    """
    if dtype is FLOAT_DTYPES and _is_ready(points, 3, finite=finite):
        return points
    return check_array(
        points,
        allow_nd=True,
        ensure_2d=False,
        input_name=name,
        **dict(DENSE_FLOATS, dtype=dtype, ensure_all_finite=finite),
    )


def validate_pairs(
    pairs, pair_labels=None, *, n_features=None, dtype=FLOAT_DTYPES, finite=True
):
    """Validate pairs of points, and optionally their +1/-1 labels.

    Parameters
    ----------
    pairs : array-like of shape (n_pairs, 2, n_features)
        ``pairs[p, 0]`` and ``pairs[p, 1]`` are the two points of pair p.
    pair_labels : array-like of shape (n_pairs,), optional
        +1 for a similar pair, -1 for a dissimilar one.
    n_features : int, optional
        The expected number of features.
    finite : bool, default=True
        Whether to check that the points are finite (see :func:`check_points`).

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2, n_features)
        Finite float32 or float64 pairs.
    pair_labels : ndarray of shape (n_pairs,) of int8, or None
    """
    pairs = check_points(pairs, "pairs", dtype=dtype, finite=finite)
    if pairs.ndim != 3 or pairs.shape[1] != 2:
        raise ValueError(
            f"pairs must have shape (n_pairs, 2, n_features); got shape {pairs.shape}."
        )
    if n_features is not None and pairs.shape[2] != n_features:
        raise ValueError(
            f"pairs have {pairs.shape[2]} features, but the estimator was "
            f"fitted with {n_features} features."
        )
    if pair_labels is None:
        return pairs, None
    return pairs, validate_pair_labels(pair_labels, pairs.shape[0])


def points_of_pairs(estimator, pairs, pair_labels):
    """Validate labelled pairs; return their points as the rows of one X.

    Pair p becomes rows ``2p`` and ``2p + 1`` of ``X``, which is checked
    like the training data of ``fit`` (setting ``n_features_in_`` on
    ``estimator``).

    Returns
    -------
    X : ndarray of shape (2 * n_pairs, n_features)
    rows, cols : ndarray of shape (n_pairs,) of intp
        Pair p is ``(X[rows[p]], X[cols[p]])``.
    signs : ndarray of shape (n_pairs,) of int8
        +1 (similar) or -1 (dissimilar).
    """
    if pair_labels is None:
        raise ValueError("fit_pairs needs pair_labels, +1 or -1 for each pair.")
    pairs, signs = validate_pairs(pairs, pair_labels)
    n_pairs, _, n_features = pairs.shape
    X = validate_X(estimator, pairs.reshape(2 * n_pairs, n_features))
    rows = np.arange(0, 2 * n_pairs, 2, dtype=np.intp)
    return X, rows, rows + 1, signs


def validate_pair_labels(pair_labels, n_pairs):
    """Check one +1 (similar) or -1 (dissimilar) label per pair.

    Returns
    -------
    pair_labels : ndarray of shape (n_pairs,) of int8
    """
    pair_labels = np.asarray(pair_labels)
    if pair_labels.shape != (n_pairs,):
        raise ValueError(
            f"pair_labels must have shape ({n_pairs},), one label per "
            f"pair; got shape {pair_labels.shape}."
        )
    if pair_labels.dtype.kind in "biuf":
        bad = (pair_labels != 1) & (pair_labels != -1)
    else:
        bad = ~np.isin(pair_labels, (-1, 1))
    if bad.any():
        raise ValueError(
            f"pair_labels must be +1 (similar) or -1 (dissimilar); got "
            f"{_plain(pair_labels[bad][0])!r}."
        )
    return pair_labels.astype(np.int8)


def _plain(value):
    """A NumPy scalar as the Python value it holds, for readable messages."""
    return value.item() if isinstance(value, np.generic) else value
