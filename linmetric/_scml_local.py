"""Sparse Compositional Metric Learning (SCML), local form: a metric per point."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._constraints import sample_triplets, validate_tuples
from ._kernels import rows_per_chunk
from ._kernels.scml import local_steps
from ._optimize import IterationLog
from ._params import Interval, StrOptions, validate_params
from ._scml import (
    TripletFeatures,
    _check_basis,
    lda_basis,
    rda,
    triplet_difference_basis,
    triplets_as_indices,
)
from ._threads import limit_threads
from ._validation import centred_in_units, validate_X, validate_X_y

# The start of the local weights: c_k = sqrt(w_k + _START_FLOOR * mean(w)),
# with w the global solution, so that no element starts at a stationary zero.
_START_FLOOR = 1e-3
# kneighbors on up to this many training points: BLAS on one thread.
_SERIAL_MAX_SAMPLES = 5000


class LocalSCML(ClassifierMixin, BaseEstimator):
    r"""Sparse Compositional Metric Learning, local form, and its kNN rule.

    The local form of SCML [1]_ gives every point ``x`` its own metric, a
    combination of the rank-one basis elements ``b_k b_k^T`` (unit vectors
    ``b_k``) with weights that vary smoothly over the space:

    .. math::

        M(x) = \sum_{k=1}^{K} w_k(x)\, b_k b_k^\top, \qquad
        w_k(x) = (a_k^\top z_x + c_k)^2 \ge 0,

    where ``z_x`` is an embedding of ``x`` (kernel PCA, below). The
    parameters ``Theta = [A, c]`` (one row ``(a_k, c_k)`` per basis element)
    are learned from triplets ``(x_i, x_j, x_l)``, "x_i is closer to x_j than
    to x_l", with the paper's mixed-norm penalty, which removes whole basis
    elements:

    .. math::

        \min_{A, c}\ \frac{1}{T} \sum_{t}
        \bigl[1 + d_{x_i}(x_i, x_j) - d_{x_i}(x_i, x_l)\bigr]_+
        + \beta \sum_{k} \|(a_k, c_k)\|_2 .

    **The distance.** As in the paper, the squared distance from ``x`` to
    ``x'`` is measured in the metric of ``x``, the first point (the anchor
    of a triplet, the query of the kNN rule):

    ``d_x(x, x')^2 = (x - x')^T M(x) (x - x') = sum_k w_k(x) (b_k^T (x - x'))^2``.

    It is not symmetric. :meth:`pair_distance` returns ``d_a(a, b)`` for
    pairs ``(a, b)``; :meth:`kneighbors` ranks the training points ``x_j``
    by ``d_x(x, x_j)`` in the metric of the query ``x``; :meth:`predict` is
    the majority label of the ``n_neighbors`` nearest (ties: lowest label).

    **Embedding.** ``z_x`` is the kernel PCA projection of ``x`` with the
    Gaussian kernel ``exp(-||x - x'||^2 / (2 sigma^2))``, ``sigma`` the
    median distance between training points, onto the first
    ``n_embedding`` components (the paper uses 40). To keep memory linear
    in the number of samples the components are those of at most
    ``n_landmarks`` training points drawn at random, and every point is
    projected through its kernel values to them (exact kernel PCA when
    ``n_landmarks >= n_samples``). The projections are divided by their
    root mean square norm on the training points.

    **Basis.** As in :class:`~linmetric.SCML`, with the paper's construction
    for ``'lda'``: k-means clusters of the training points, and for each
    cluster centre LDA of its ``30 * n_classes`` nearest training points.
    The same triplets, basis and normalisation as the global form.

    **Solver.** The paper's start: ``A = 0`` and ``c_k`` the square root of
    the weights of the global SCML fitted first on the same triplets and
    basis (plus a floor of ``1e-3`` times their mean, so that no element is
    stuck at zero). Then stochastic proximal subgradient steps on
    mini-batches of triplets, with one AdaGrad step size per basis element,
    ``eta_k = learning_rate * s / sqrt(g0^2 + sum of squared row-gradient
    norms)`` (``s`` the root mean square of the starting ``c``, ``g0`` the
    root mean square row norm of the full loss gradient at the start), each followed by the
    proximal map of the mixed norm (rows shrunk towards zero by
    ``eta_k beta`` in norm). Every ``output_iter`` steps the mean batch
    objective of the window is recorded; the fit has converged when it
    improved by less than ``tol`` relatively on the previous window. The
    objective is not convex; the start makes the local metric begin as the
    global one.

    Parameters
    ----------
    n_neighbors : int, default=3
        Neighbours that vote in :meth:`predict`.
    beta : float, default=1e-5
        Weight of the mixed-norm penalty, in the normalised units of
        :class:`~linmetric.SCML` (also used for its global start).
    basis : {'auto', 'lda', 'triplet_diffs'} or array-like, default='auto'
        As in :class:`~linmetric.SCML` (an array has shape
        ``(n_basis, n_features)``); ``'lda'`` here centres the
        neighbourhoods on k-means centres.
    n_basis : int or None, default=None
        Size of the basis; None means ``5 * n_features``.
    n_embedding : int, default=40
        Dimension of the kernel PCA embedding ``z_x`` (fewer if the kernel
        matrix has fewer positive eigenvalues).
    n_landmarks : int, default=500
        The most training points whose kernel PCA defines the embedding.
    learning_rate : float, default=1.0
        Scale of the AdaGrad steps, relative to the size of the start.
    max_iter : int, default=10000
        The most local steps (the global start runs its own default
        schedule).
    output_iter : int, default=500
        Steps per recorded window (one row of ``loss_curve_``).
    batch_size : int, default=10
        Triplets per step.
    tol : float, default=1e-2
        Relative improvement of the window objective below which the fit
        stops.
    k_genuine, k_impostor : int, default=3 and 10
        In ``fit(X, y)``: triplets with each sample's ``k_genuine`` nearest
        same-class and ``k_impostor`` nearest other-class samples.
    n_constraints : int or None, default=None
        In ``fit(X, y)``: keep that many of those triplets; None keeps all.
    verbose : int, default=0
        If positive, print one line per window.
    callback : callable or None, default=None
        Called as ``callback(coefficients, n_window)`` after each window,
        ``coefficients`` of the shape of ``coefficients_``.
    random_state : int, RandomState instance or None, default=None
        Draws the landmarks, the clusters, the triplets and the batches.
    working_memory : float or None, default=None
        Budget in MiB for one block of distances in :meth:`kneighbors`;
        None means ``sklearn.get_config()["working_memory"]``.

    Attributes
    ----------
    basis_ : ndarray of shape (n_basis, n_features)
        The unit basis vectors ``b_k``.
    coefficients_ : ndarray of shape (n_basis, n_embedding_ + 1)
        ``[A, c]``: row ``k`` is ``(a_k, c_k)``, in normalised units (the
        weights in the units of the data are given by :meth:`local_weights`).
        All-zero rows are the basis elements that the penalty removed.
    n_embedding_ : int
        Dimension of ``z_x``.
    global_weights_ : ndarray of shape (n_basis,)
        The weights of the global start, in the units of the data.
    classes_ : ndarray of shape (n_classes,)
        The class labels (after ``fit(X, y)``; None after ``fit_triplets``).
    n_iter_ : int
        Local steps done.
    loss_curve_ : ndarray of shape (n_windows,)
        The mean batch objective of each window of ``output_iter`` steps.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.

    Notes
    -----
    Memory is linear in the number of samples and triplets: the embedding
    costs ``n_samples x n_landmarks`` kernel values in blocks, one step costs
    ``O(batch_size * n_basis * n_embedding)``, and :meth:`kneighbors` works
    on blocks of query rows within ``working_memory``
    (``O(n_queries * n_train * n_basis)`` time). Differences from [1]_: the
    embedding's kernel PCA is that of a random subset of at most
    ``n_landmarks`` points; the squared projections are normalised as in
    :class:`~linmetric.SCML`; the steps use per-element AdaGrad sizes, and
    the last iterate is kept.

    References
    ----------
    .. [1] Y. Shi, A. Bellet and F. Sha, "Sparse compositional metric
       learning", AAAI 2014.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from linmetric import LocalSCML
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = LocalSCML(n_embedding=5, random_state=0).fit(X, y)
    >>> weights = clf.local_weights(X[[0, 100]])  # one row per point
    >>> weights.shape == (2, clf.basis_.shape[0])
    True
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "beta": [Interval(numbers.Real, 0, None, closed="left")],
        "basis": [StrOptions({"auto", "lda", "triplet_diffs"}), "array-like"],
        "n_basis": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_embedding": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_landmarks": [Interval(numbers.Integral, 2, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "output_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "k_genuine": [Interval(numbers.Integral, 1, None, closed="left")],
        "k_impostor": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_constraints": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "verbose": ["verbose"],
        "callback": ["callable", None],
        "random_state": ["random_state"],
        "working_memory": [None, Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_neighbors=3,
        *,
        beta=1e-5,
        basis="auto",
        n_basis=None,
        n_embedding=40,
        n_landmarks=500,
        learning_rate=1.0,
        max_iter=10000,
        output_iter=500,
        batch_size=10,
        tol=1e-2,
        k_genuine=3,
        k_impostor=10,
        n_constraints=None,
        verbose=0,
        callback=None,
        random_state=None,
        working_memory=None,
    ):
        self.n_neighbors = n_neighbors
        self.beta = beta
        self.basis = basis
        self.n_basis = n_basis
        self.n_embedding = n_embedding
        self.n_landmarks = n_landmarks
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.output_iter = output_iter
        self.batch_size = batch_size
        self.tol = tol
        self.k_genuine = k_genuine
        self.k_impostor = k_impostor
        self.n_constraints = n_constraints
        self.verbose = verbose
        self.callback = callback
        self.random_state = random_state
        self.working_memory = working_memory

    def fit(self, X, y):
        """Learn the local metrics from triplets drawn from class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, finite; float32 is kept.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes, one with two members.

        Returns
        -------
        self : LocalSCML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        X, y_codes, classes = validate_X_y(self, X, y)
        X_centred, exponent = centred_in_units(X)
        X_centred = np.asarray(X_centred, dtype=np.float64)
        triplets = sample_triplets(
            X_centred,
            y_codes,
            k_genuine=self.k_genuine,
            k_impostor=self.k_impostor,
            n_constraints=self.n_constraints,
            random_state=random_state,
        )
        basis = self.basis
        if isinstance(basis, str) and basis == "auto":
            basis = "lda"
        self._fit(X, X_centred, exponent, triplets, basis, y_codes, random_state)
        self.classes_ = classes
        self._labels = y_codes
        return self

    def fit_triplets(self, triplets):
        """Learn the local metrics from triplets ``(a, b, c)``, ``d(a, b) < d(a, c)``.

        The distinct points of the triplets become the training points of
        :meth:`kneighbors`; with no labels, :meth:`predict` is unavailable.

        Parameters
        ----------
        triplets : array-like of shape (n_triplets, 3, n_features)

        Returns
        -------
        self : LocalSCML
        """
        validate_params(self)
        random_state = check_random_state(self.random_state)
        points, index, basis = triplets_as_indices(triplets, self.basis)
        X = validate_X(self, points)
        X_centred, exponent = centred_in_units(X)
        X_centred = np.asarray(X_centred, dtype=np.float64)
        self._fit(X, X_centred, exponent, index, basis, None, random_state)
        self.classes_ = None
        self._labels = None
        return self

    def _fit(self, X, X64, exponent, triplets, basis, y_codes, random_state):
        # small products and factorisations: BLAS threads only cost hand-offs
        with limit_threads(blas=1):
            self._fit_serial(X, X64, exponent, triplets, basis, y_codes, random_state)

    def _fit_serial(self, X, X64, exponent, triplets, basis, y_codes, random_state):
        # X64: centred, in units of 2**exponent (see centred_in_units)
        n_features = X64.shape[1]
        n_basis = self.n_basis if self.n_basis is not None else 5 * n_features
        if isinstance(basis, str):
            if basis == "lda":
                centres = kmeans_centres(
                    X64, -(-n_basis // max(1, int(y_codes.max()))), random_state
                )
                basis = lda_basis(X64, y_codes, n_basis, random_state, centres=centres)
            else:
                basis = triplet_difference_basis(X64, triplets, n_basis, random_state)
        else:
            basis = _check_basis(basis, n_features)
        embedding = KernelEmbedding(
            X64, self.n_embedding, self.n_landmarks, random_state
        )
        Z1 = embedding.transform(X64, with_bias=True)
        features = TripletFeatures.from_points(X64, basis, triplets)

        # the paper's start: the global solution as constant weights
        global_weights, _, _ = rda(
            features,
            beta=self.beta,
            gamma=5e-3,
            max_iter=10000,
            output_iter=500,
            batch_size=10,
            tol=1e-2,
            random_state=random_state,
            log=IterationLog("SCML", columns=("n_nonzero",)),
            components=None,
        )
        start = np.zeros((basis.shape[0], Z1.shape[1]))
        start[:, -1] = np.sqrt(
            global_weights + _START_FLOOR * max(global_weights.mean(), 1e-12)
        )
        log = IterationLog(
            "LocalSCML",
            verbose=self.verbose,
            callback=self.callback,
            columns=("n_nonzero",),
        )
        coefficients, n_iter, converged = proximal_adagrad(
            features,
            Z1,
            start,
            beta=self.beta,
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            output_iter=self.output_iter,
            batch_size=self.batch_size,
            tol=self.tol,
            random_state=random_state,
            log=log,
        )
        log.finish(
            converged,
            None if converged else f"{n_iter} steps without a stable objective",
        )
        if not np.any(coefficients):
            warnings.warn(
                "LocalSCML: every basis element was removed, so the learned "
                "metric is zero; lower beta or give more informative triplets.",
                UserWarning,
                stacklevel=3,
            )
        self.basis_ = basis.astype(X.dtype)
        self.coefficients_ = coefficients
        self.n_embedding_ = Z1.shape[1] - 1
        with np.errstate(over="ignore", under="ignore"):
            self.global_weights_ = np.ldexp(
                global_weights / features.scale, -2 * exponent
            )
        self.n_iter_ = n_iter
        self.loss_curve_ = log.loss_curve
        self._embedding = embedding
        self._scale = features.scale
        self._exponent = exponent
        self._mean = np.ldexp(X.mean(axis=0, dtype=np.float64), -exponent)
        self._train = X64
        self._train_projections = X64 @ basis.T
        self._dtype = X.dtype

    def _in_units(self, X):
        """X validated, centred like the training data, in its units."""
        X = validate_X(self, X, reset=False)
        X64 = np.ldexp(np.asarray(X, dtype=np.float64), -self._exponent)
        return X64 - self._mean, X.dtype

    def _weights_in_units(self, X64):
        Z1 = self._embedding.transform(X64, with_bias=True)
        return local_weights(self.coefficients_, Z1) / self._scale

    def local_weights(self, X):
        """The weights ``w_k(x)`` of the metric at each point, in data units.

        ``M(x) = basis_.T @ diag(w(x)) @ basis_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        weights : ndarray of shape (n_samples, n_basis)
        """
        check_is_fitted(self)
        X64, dtype = self._in_units(X)
        with np.errstate(over="ignore", under="ignore"):
            weights = np.ldexp(self._weights_in_units(X64), -2 * self._exponent)
        return weights.astype(dtype)

    def pair_distance(self, pairs):
        """``d_a(a, b)``: the distance of each pair in the metric of its first point.

        Parameters
        ----------
        pairs : array-like of shape (n_pairs, 2, n_features)

        Returns
        -------
        distances : ndarray of shape (n_pairs,)
            ``sqrt((a - b)^T M(a) (a - b))``.
        """
        check_is_fitted(self)
        pairs = validate_tuples(pairs, 2, name="pairs", meaning="(a, b)")
        if pairs.shape[2] != self.n_features_in_:
            raise ValueError(
                f"pairs have {pairs.shape[2]} features, but LocalSCML was "
                f"fitted with {self.n_features_in_}."
            )
        first, dtype = self._in_units(pairs[:, 0])
        second, _ = self._in_units(pairs[:, 1])
        weights = self._weights_in_units(first)
        projected = (first - second) @ self.basis_.T.astype(np.float64)
        squared = np.einsum("ij,ij->i", weights, projected * projected)
        return np.sqrt(squared).astype(dtype)

    def kneighbors(self, X):
        """The ``n_neighbors`` nearest training points, in the metric of each query.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query points.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_neighbors)
            ``d_x(x, x_j)``, increasing (ties by index).
        indices : ndarray of shape (n_samples, n_neighbors)
            Indices of the training points (after ``fit_triplets``: of the
            distinct points of the triplets, in lexicographic order).
        """
        check_is_fitted(self)
        X64, dtype = self._in_units(X)
        serial = self._train.shape[0] <= _SERIAL_MAX_SAMPLES
        with limit_threads(blas=1 if serial else None):
            weights = self._weights_in_units(X64)
            distances, indices = nearest_in_local_metrics(
                X64 @ self.basis_.T.astype(np.float64),
                weights,
                self._train_projections,
                min(self.n_neighbors, self._train.shape[0]),
                self.working_memory,
            )
        return distances.astype(dtype), indices

    def predict_proba(self, X):
        """The fraction of the ``n_neighbors`` nearest in each class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        if self._labels is None:
            raise ValueError(
                "LocalSCML was fitted with fit_triplets, which learns no class "
                "labels; predict needs fit(X, y). kneighbors and pair_distance "
                "work."
            )
        _, indices = self.kneighbors(X)
        labels = self._labels[indices]
        votes = np.zeros((labels.shape[0], self.classes_.shape[0]))
        rows = np.arange(labels.shape[0])
        for column in labels.T:
            votes[rows, column] += 1.0
        return votes / labels.shape[1]

    def predict(self, X):
        """The majority label of the ``n_neighbors`` nearest (ties: lowest).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


class KernelEmbedding:
    """Kernel PCA with a Gaussian kernel on at most ``n_landmarks`` points.

    ``sigma`` is the median distance between distinct landmarks; a point's
    coordinates are its centred kernel values to the landmarks times the
    eigenvectors divided by the square roots of their eigenvalues (the
    kernel PCA projection), then divided by their RMS norm on ``X``.
    """

    def __init__(self, X, n_embedding, n_landmarks, random_state):
        n_samples = X.shape[0]
        if n_samples > n_landmarks:
            chosen = np.sort(random_state.choice(n_samples, n_landmarks, replace=False))
            landmarks = X[chosen]
        else:
            landmarks = X
        self.landmarks = landmarks
        squared = _squared_distances(landmarks, landmarks)
        upper = squared[np.triu_indices(landmarks.shape[0], 1)]
        upper = upper[upper > 0]
        self.sigma2 = float(np.median(upper)) if upper.size else 1.0
        kernel = np.exp(-squared / (2.0 * self.sigma2))
        self.column_means = kernel.mean(axis=0)
        self.total_mean = float(self.column_means.mean())
        centred = (
            kernel
            - self.column_means[:, None]
            - self.column_means[None, :]
            + self.total_mean
        )
        values, vectors = np.linalg.eigh(centred)
        values, vectors = values[::-1], vectors[:, ::-1]
        keep = values > 1e-10 * max(values[0], 0.0)
        keep &= np.arange(values.size) < n_embedding
        self.projection = vectors[:, keep] / np.sqrt(values[keep])
        self.norm = 1.0
        Z = self.transform(X, with_bias=False)
        rms = float(np.sqrt(np.mean(np.einsum("ij,ij->i", Z, Z)))) if Z.size else 0.0
        self.norm = rms if rms > 0 else 1.0

    def transform(self, X, *, with_bias):
        """``z_x`` of each row (with a trailing column of ones if asked)."""
        n_rows = rows_per_chunk(8 * self.landmarks.shape[0], max_rows=X.shape[0])
        n_out = self.projection.shape[1]
        Z = np.ones((X.shape[0], n_out + 1 if with_bias else n_out))
        for start in range(0, X.shape[0], n_rows):
            block = slice(start, min(start + n_rows, X.shape[0]))
            kernel = np.exp(
                -_squared_distances(X[block], self.landmarks) / (2.0 * self.sigma2)
            )
            row_means = kernel.mean(axis=1, keepdims=True)
            kernel -= self.column_means[None, :] + row_means - self.total_mean
            Z[block, :n_out] = kernel @ self.projection / self.norm
        return Z


def _squared_distances(A, B):
    squared = (
        np.einsum("ij,ij->i", A, A)[:, None]
        + np.einsum("ij,ij->i", B, B)[None, :]
        - 2.0 * A @ B.T
    )
    return np.maximum(squared, 0.0)


def kmeans_centres(X, n_centres, random_state, n_iter=20):
    """Centres of k-means clusters of X: k-means++ seeding, then Lloyd steps.

    At most the number of distinct rows; an emptied cluster keeps its centre.
    """
    n_distinct = np.unique(X, axis=0).shape[0]
    n_centres = max(1, min(n_centres, n_distinct))
    squared_norms = np.einsum("ij,ij->i", X, X)
    first = X[random_state.randint(X.shape[0])]
    centres = [first]
    closest = np.maximum(squared_norms - 2.0 * X @ first + first @ first, 0.0)
    for _ in range(1, n_centres):
        total = closest.sum()
        if not total > 0:
            break
        chosen = X[random_state.choice(X.shape[0], p=closest / total)]
        centres.append(chosen)
        distances = squared_norms - 2.0 * X @ chosen + chosen @ chosen
        np.minimum(closest, np.maximum(distances, 0.0), out=closest)
    centres = np.array(centres)
    for _ in range(n_iter):
        labels = np.argmin(
            np.einsum("ij,ij->i", centres, centres)[None, :] - 2.0 * X @ centres.T,
            axis=1,
        )
        counts = np.bincount(labels, minlength=centres.shape[0])
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, X)
        filled = counts > 0
        updated = centres.copy()
        updated[filled] = sums[filled] / counts[filled, None]
        if np.array_equal(updated, centres):
            break
        centres = updated
    return centres


def local_weights(coefficients, Z1):
    """``w_k(x) = (a_k^T z_x + c_k)^2`` for rows ``[z_x, 1]`` of Z1."""
    U = Z1 @ coefficients.T
    return U * U


def local_loss_grad(coefficients, Z1, features, beta):
    """The full objective and its gradient in ``coefficients``.

    ``1/T sum_t [1 + sum_k w_k(x_{a_t}) z_tk]_+ + beta sum_k ||Theta_k||``
    with ``z_t`` the (normalised) triplet features of ``features``, in blocks
    of triplets. The penalty's gradient is taken where the rows are
    non-zero.

    Returns
    -------
    loss : float
    grad : ndarray of shape coefficients.shape
    """
    n_triplets = len(features)
    n_basis = coefficients.shape[0]
    loss, grad = 0.0, np.zeros_like(coefficients)
    n_rows = rows_per_chunk(8 * 3 * n_basis, max_rows=n_triplets)
    for start in range(0, n_triplets, n_rows):
        index = np.arange(start, min(start + n_rows, n_triplets))
        rows = features.rows(index)
        Zb = Z1[features.triplets[index, 0]]
        U = Zb @ coefficients.T
        margins = 1.0 + np.einsum("ij,ij->i", U * U, rows)
        active = margins > 0
        loss += margins[active].sum()
        grad += (2.0 * U[active] * rows[active]).T @ Zb[active]
    norms = np.linalg.norm(coefficients, axis=1)
    nonzero = norms > 0
    grad /= n_triplets
    grad[nonzero] += beta * coefficients[nonzero] / norms[nonzero, None]
    return loss / n_triplets + beta * norms.sum(), grad


def proximal_adagrad(
    features,
    Z1,
    start,
    *,
    beta,
    learning_rate,
    max_iter,
    output_iter,
    batch_size,
    tol,
    random_state,
    log,
):
    """Stochastic proximal subgradient steps with per-row AdaGrad sizes.

    See :class:`LocalSCML`. Returns ``(coefficients, n_iter, converged)``.
    """
    n_triplets = len(features)
    coefficients = start.copy()
    squared_sum = np.zeros(start.shape[0])
    size = float(np.sqrt(np.mean(start[:, -1] ** 2)))
    eta = learning_rate * (size if size > 0 else 1.0)
    # AdaGrad's floor: the RMS row norm of the full loss gradient at the
    # start, so that no step exceeds eta while gradients are still small
    _, start_gradient = local_loss_grad(start, Z1, features, 0.0)
    delta = float(
        np.sqrt(np.mean(np.einsum("ij,ij->i", start_gradient, start_gradient)))
    )
    delta = delta if delta > 0 else 1.0
    batch_size = min(batch_size, n_triplets)
    projections = np.ascontiguousarray(features.projections, dtype=np.float64)
    triplets = np.ascontiguousarray(features.triplets, dtype=np.intp)
    embedded = np.ascontiguousarray(Z1, dtype=np.float64)
    previous, converged = np.inf, False
    n_iter = 0
    while n_iter < max_iter:
        # one window: batches drawn at once (the stream of one draw per
        # step), the steps in a compiled loop
        n_steps = min(output_iter, max_iter - n_iter)
        batches = random_state.randint(n_triplets, size=(n_steps, batch_size))
        window_loss = local_steps(
            projections,
            triplets,
            embedded,
            batches.astype(np.intp, copy=False),
            float(features.scale),
            coefficients,
            squared_sum,
            float(eta),
            float(delta),
            float(beta),
        )
        n_iter += n_steps
        loss = window_loss / n_steps
        log.record(
            -(-n_iter // output_iter),
            loss,
            coefficients.copy() if log.callback is not None else None,
            n_nonzero=int(np.count_nonzero(np.any(coefficients, axis=1))),
        )
        if np.isfinite(previous) and previous - loss <= tol * abs(previous):
            converged = True
            break
        previous = loss
    return coefficients, n_iter, converged


def nearest_in_local_metrics(query_projections, weights, train_projections, k, wm):
    """The ``k`` nearest training points, ``sum_k w_k(x) (p_k(x) - p_k(x_j))^2``.

    In blocks of query rows within the ``wm`` MiB budget (a float64 row of
    distances to every training point per query); ties by index.
    """
    n_train = train_projections.shape[0]
    n_queries = query_projections.shape[0]
    squared_train = train_projections * train_projections
    n_rows = rows_per_chunk(16 * n_train, wm, max_rows=n_queries)
    distances = np.empty((n_queries, k))
    indices = np.empty((n_queries, k), dtype=np.intp)
    for start in range(0, n_queries, n_rows):
        stop = min(start + n_rows, n_queries)
        W = weights[start:stop]
        P = query_projections[start:stop]
        block = (
            W @ squared_train.T
            - 2.0 * (W * P) @ train_projections.T
            + np.einsum("ij,ij->i", W, P * P)[:, None]
        )
        np.maximum(block, 0.0, out=block)
        candidates = np.argpartition(block, k - 1, axis=1)[:, :k]
        bound = np.take_along_axis(block, candidates, axis=1).max(axis=1)
        for r in range(stop - start):
            inside = np.flatnonzero(block[r] <= bound[r])
            order = np.lexsort((inside, block[r, inside]))[:k]
            indices[start + r] = inside[order]
            distances[start + r] = block[r, inside[order]]
    return np.sqrt(distances), indices
