"""Scores of a learned space, computed the same way for every library.

Every method hands over the transformed training and test sets; everything
else (kNN accuracy, retrieval and clustering quality) is computed here.
"""

import numpy as np


def knn_accuracy(Z_train, y_train, Z_test, y_test, n_neighbors=3):
    """Test accuracy of the k-nearest-neighbour rule (majority vote)."""
    from sklearn.neighbors import KNeighborsClassifier

    classifier = KNeighborsClassifier(n_neighbors=n_neighbors, algorithm="brute")
    return float(classifier.fit(Z_train, y_train).score(Z_test, y_test))


def retrieval_scores(Z_train, y_train, Z_test, y_test, *, chunk_size=256):
    """Precision@1 and MAP@R of test queries against the training set.

    For a query of class ``c``, ``R`` is the number of training points of
    class ``c``; AP@R is ``(1/R) * sum_{i<=R} P(i) * rel(i)`` over the ``R``
    nearest training points, with ``P(i)`` the precision among the first
    ``i`` and ``rel(i)`` whether the ``i``-th is of class ``c``. MAP@R is its
    mean over queries (Musgrave, Belongie and Lim, "A metric learning reality
    check", ECCV 2020). Precision@1 is the fraction of queries whose nearest
    training point shares their class.

    Returns
    -------
    scores : dict with keys ``precision_at_1`` and ``map_at_r``.

    Examples
    --------
    >>> import numpy as np
    >>> Z_train = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> y_train = np.array([0, 0, 1, 1])
    >>> scores = retrieval_scores(Z_train, y_train, np.array([[0.4], [2.0]]),
    ...                           np.array([0, 1]))
    >>> scores["precision_at_1"], scores["map_at_r"]
    (0.5, 0.5)
    """
    Z_train = np.asarray(Z_train, dtype=np.float64)
    Z_test = np.asarray(Z_test, dtype=np.float64)
    classes, train_codes = np.unique(y_train, return_inverse=True)
    class_sizes = np.bincount(train_codes, minlength=classes.size)
    test_codes = np.searchsorted(classes, y_test)
    known = (test_codes < classes.size) & (
        classes[np.minimum(test_codes, classes.size - 1)] == y_test
    )
    r_per_query = np.where(
        known, class_sizes[np.minimum(test_codes, classes.size - 1)], 0
    )
    r_max = int(r_per_query.max(initial=1))
    train_sq_norms = np.einsum("ij,ij->i", Z_train, Z_train)
    hits_at_1 = 0.0
    ap_sum = 0.0
    ranks = np.arange(1, r_max + 1)
    for start in range(0, len(Z_test), chunk_size):
        queries = Z_test[start : start + chunk_size]
        distances = train_sq_norms[np.newaxis, :] - 2.0 * queries @ Z_train.T
        if r_max < distances.shape[1]:
            nearest = np.argpartition(distances, r_max - 1, axis=1)[:, :r_max]
        else:
            nearest = np.broadcast_to(np.arange(distances.shape[1]), distances.shape)
        order = np.take_along_axis(
            nearest, np.argsort(np.take_along_axis(distances, nearest, 1), 1), 1
        )
        query_codes = test_codes[start : start + chunk_size]
        r = r_per_query[start : start + chunk_size]
        relevant = train_codes[order] == query_codes[:, np.newaxis]
        relevant &= known[start : start + chunk_size, np.newaxis]
        hits_at_1 += relevant[:, 0].sum()
        within_r = ranks[np.newaxis, : relevant.shape[1]] <= r[:, np.newaxis]
        precision = np.cumsum(relevant, axis=1) / ranks[np.newaxis, : relevant.shape[1]]
        summed = (precision * (relevant & within_r)).sum(axis=1)
        ap_sum += np.sum(np.divide(summed, r, out=np.zeros_like(summed), where=r > 0))
    n_queries = max(len(Z_test), 1)
    return {
        "precision_at_1": float(hits_at_1 / n_queries),
        "map_at_r": float(ap_sum / n_queries),
    }


def clustering_scores(Z_test, y_test, *, seed=0, n_init=4):
    """NMI and ARI of KMeans (one cluster per class) on the transformed test set."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    n_clusters = int(np.unique(y_test).size)
    labels = KMeans(
        n_clusters=n_clusters, n_init=n_init, random_state=seed
    ).fit_predict(Z_test)
    return {
        "nmi": float(normalized_mutual_info_score(y_test, labels)),
        "ari": float(adjusted_rand_score(y_test, labels)),
    }


def score_embedding(Z_train, y_train, Z_test, y_test, *, n_neighbors=3, seed=0):
    """All scores of one learned space: kNN accuracy, retrieval, clustering."""
    scores = {
        "knn_accuracy": knn_accuracy(Z_train, y_train, Z_test, y_test, n_neighbors)
    }
    scores.update(retrieval_scores(Z_train, y_train, Z_test, y_test))
    scores.update(clustering_scores(Z_test, y_test, seed=seed))
    return scores


def _distances(Z, rows, first, second):
    """Euclidean distances between columns ``first`` and ``second`` of index tuples."""
    difference = Z[rows[:, first]] - Z[rows[:, second]]
    return np.sqrt(np.einsum("ij,ij->i", difference, difference))


def accuracy_threshold(distances, labels):
    """The distance threshold most accurate on labelled pairs.

    Pairs closer than the threshold are called similar (+1). Every cut
    between consecutive distinct distances is tried, and the cuts below the
    smallest and above the largest; the threshold is the midpoint of the
    best cut (the first of equally accurate ones).

    >>> accuracy_threshold(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 1, -1, -1]))
    2.5
    """
    distances = np.asarray(distances, dtype=np.float64)
    order = np.argsort(distances, kind="stable")
    d, similar = distances[order], np.asarray(labels)[order] == 1
    # correct when cutting after position i: similar ones up to i, dissimilar after
    correct = np.concatenate([[0], np.cumsum(similar)]) + np.concatenate(
        [np.cumsum((~similar)[::-1])[::-1], [0]]
    )
    distinct = np.concatenate([[True], d[1:] > d[:-1], [True]])  # valid cuts
    best = int(np.argmax(np.where(distinct, correct, -1)))
    if best == 0:
        return float(d[0] - 1.0) if d.size else 0.0
    if best == d.size:
        return float(d[-1] + 1.0)
    return float((d[best - 1] + d[best]) / 2.0)


def tuple_scores(Z_train, Z_test, tuples):
    """Pair, triplet and quadruplet scores of a learned space on held-out tuples.

    ``tuples`` holds row indices (:data:`benchmarks.data.TUPLE_KEYS`).
    ``pair_auc`` is the ROC AUC of the negated distance on the test pairs;
    ``pair_accuracy`` the accuracy on them of the threshold most accurate on
    the training pairs (:func:`accuracy_threshold`); ``triplet_accuracy``
    and ``quadruplet_accuracy`` the fractions of test triplets ``(a, b, c)``
    with ``d(a, b) < d(a, c)`` and quadruplets with ``d(a, b) < d(c, d)``.
    """
    from sklearn.metrics import roc_auc_score

    train_d = _distances(Z_train, tuples["pairs_train"], 0, 1)
    threshold = accuracy_threshold(train_d, tuples["pair_labels_train"])
    test_d = _distances(Z_test, tuples["pairs_test"], 0, 1)
    labels = tuples["pair_labels_test"]
    triplets = tuples["triplets_test"]
    quadruplets = tuples["quadruplets_test"]
    near = _distances(Z_test, quadruplets, 0, 1)
    far = _distances(Z_test, quadruplets, 2, 3)
    return {
        "pair_auc": float(roc_auc_score(labels, -test_d)),
        "pair_accuracy": float(np.mean(np.where(test_d < threshold, 1, -1) == labels)),
        "triplet_accuracy": float(
            np.mean(
                _distances(Z_test, triplets, 0, 1) < _distances(Z_test, triplets, 0, 2)
            )
        ),
        "quadruplet_accuracy": float(np.mean(near < far)),
    }


def kernel_regression(Z_train, y_train, Z_test, *, chunk_size=512):
    """Nadaraya-Watson predictions with the Gaussian kernel ``exp(-||z - z'||^2)``.

    The kernel has no width of its own (MLKR's model: the learned map sets
    the scale). Weights are shifted by each query's smallest distance before
    the exponential, so a query far from every training point still gets the
    prediction of the nearest ones instead of 0/0.
    """
    Z_train = np.asarray(Z_train, dtype=np.float64)
    Z_test = np.asarray(Z_test, dtype=np.float64)
    train_sq = np.einsum("ij,ij->i", Z_train, Z_train)
    predictions = np.empty(len(Z_test))
    for start in range(0, len(Z_test), chunk_size):
        queries = Z_test[start : start + chunk_size]
        squared = (
            np.einsum("ij,ij->i", queries, queries)[:, np.newaxis]
            + train_sq[np.newaxis, :]
            - 2.0 * queries @ Z_train.T
        )
        np.maximum(squared, 0.0, out=squared)
        weights = np.exp(-(squared - squared.min(axis=1, keepdims=True)))
        predictions[start : start + chunk_size] = (weights @ y_train) / weights.sum(1)
    return predictions


def regression_scores(Z_train, y_train, Z_test, y_test, *, n_neighbors=5):
    """Test RMSE and R^2 of kNN regression and of Gaussian kernel regression.

    kNN regression averages the targets of the ``n_neighbors`` nearest
    training points (uniform weights); kernel regression is
    :func:`kernel_regression`. RMSE is in the targets' units.
    """
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    knn = KNeighborsRegressor(n_neighbors=n_neighbors, algorithm="brute")
    scores = {}
    for name, predicted in (
        ("knn", knn.fit(Z_train, y_train).predict(Z_test)),
        ("kernel", kernel_regression(Z_train, y_train, Z_test)),
    ):
        scores[f"{name}_rmse"] = float(np.sqrt(np.mean((predicted - y_test) ** 2)))
        scores[f"{name}_r2"] = float(r2_score(y_test, predicted))
    return scores
