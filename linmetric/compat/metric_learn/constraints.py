"""Constraints drawn from (partial) class labels, as metric-learn offered them.

``Constraints(partial_labels)`` draws similar and dissimilar pairs, k-NN
triplets and chunklets with linmetric's samplers; a label below 0 (such as
-1) marks an unlabelled sample, which is never drawn.
"""

import numpy as np
from sklearn.utils import check_random_state

from ..._constraints import sample_triplets
from ..._itml import sample_label_pairs
from ..._rca import draw_chunklets
from .base_metric import renamed_argument

__all__ = ["Constraints", "wrap_pairs"]


class Constraints:
    """Pairs, triplets and chunklets drawn from partial class labels.

    Parameters
    ----------
    partial_labels : array-like of shape (n_samples,)
        Class labels; negative values mark unlabelled samples.

    Attributes
    ----------
    partial_labels : ndarray of shape (n_samples,)
    """

    def __init__(self, partial_labels):
        self.partial_labels = np.asarray(partial_labels)

    def _known(self):
        labels = self.partial_labels
        known = np.ones(labels.shape[0], dtype=bool)
        if np.issubdtype(labels.dtype, np.number):
            known = labels >= 0
        rows = np.flatnonzero(known)
        _, codes = np.unique(labels[rows], return_inverse=True)
        return rows, codes.astype(np.intp)

    def positive_negative_pairs(
        self,
        n_constraints,
        same_length=False,
        random_state=None,
        num_constraints="deprecated",
    ):
        """``n_constraints`` same-class pairs and ``n_constraints`` different-class pairs.

        Pairs are drawn uniformly with replacement from the labelled samples
        (see :func:`linmetric._itml.sample_label_pairs`); a sample is never
        paired with itself. metric-learn drew distinct pairs and returned
        fewer, with a warning, when they ran out; here exactly
        ``n_constraints`` of each are returned whenever a class has two
        members (no positive pairs otherwise).

        Parameters
        ----------
        n_constraints : int
        same_length : bool, default=False
            Trim both kinds to the shorter one.
        random_state : int, RandomState or None, default=None
        num_constraints : int, optional
            Former name of ``n_constraints`` (``FutureWarning``).

        Returns
        -------
        a, b : ndarray of int
            The two samples of each positive pair.
        c, d : ndarray of int
            The two samples of each negative pair.
        """
        n_constraints = renamed_argument(
            "positive_negative_pairs",
            "num_constraints",
            num_constraints,
            "n_constraints",
            n_constraints,
        )
        rows, codes = self._known()
        rng = check_random_state(random_state)
        first, second, signs = sample_label_pairs(codes, 2 * n_constraints, rng)
        first, second = rows[first], rows[second]
        positive = signs > 0
        a, b = first[positive], second[positive]
        c, d = first[~positive], second[~positive]
        if same_length and a.shape[0] != c.shape[0]:
            n = min(a.shape[0], c.shape[0])
            a, b, c, d = a[:n], b[:n], c[:n], d[:n]
        return a, b, c, d

    def generate_knntriplets(self, X, k_genuine, k_impostor):
        """Triplets ``(i, j, l)``: ``j`` a near same-class, ``l`` a near other-class sample.

        For every labelled sample, each of its ``k_genuine`` nearest
        same-class neighbours is paired with each of its ``k_impostor``
        nearest other-class neighbours (Euclidean distance; both cut to what
        the classes hold). Indices are rows of ``X`` (metric-learn gave rows
        of the labelled subset).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        k_genuine, k_impostor : int

        Returns
        -------
        triplets : ndarray of shape (n_triplets, 3)
        """
        X = np.asarray(X, dtype=float)
        rows, codes = self._known()
        triplets = sample_triplets(
            X[rows],
            codes,
            k_genuine=k_genuine,
            k_impostor=k_impostor,
            random_state=check_random_state(0),
        )
        return rows[triplets]

    def chunks(
        self, n_chunks=100, chunk_size=2, random_state=None, num_chunks="deprecated"
    ):
        """Disjoint chunklets of ``chunk_size`` same-class samples.

        Parameters
        ----------
        n_chunks : int, default=100
        chunk_size : int, default=2
        random_state : int, RandomState or None, default=None
        num_chunks : int, optional
            Former name of ``n_chunks`` (``FutureWarning``).

        Returns
        -------
        chunks : ndarray of shape (n_samples,)
            Chunklet id of each sample, -1 for none. A ``ValueError`` if the
            classes cannot supply ``n_chunks`` chunklets.
        """
        n_chunks = renamed_argument(
            "chunks", "num_chunks", num_chunks, "n_chunks", n_chunks
        )
        rows, codes = self._known()
        rng = check_random_state(random_state)
        drawn = draw_chunklets(codes, n_chunks, chunk_size, rng)
        chunks = np.full(self.partial_labels.shape[0], -1, dtype=np.intp)
        chunks[rows] = drawn
        return chunks


def wrap_pairs(X, constraints):
    """Pairs of points and +1/-1 labels from ``(a, b, c, d)`` index arrays.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    constraints : tuple of four index arrays
        As returned by :meth:`Constraints.positive_negative_pairs`.

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2, n_features)
        Positive pairs first.
    y : ndarray of shape (n_pairs,)
        +1 for the positive pairs, -1 for the negative ones.
    """
    a, b, c, d = (np.asarray(part, dtype=np.intp) for part in constraints)
    index = np.concatenate(
        (np.stack((a, b), axis=1), np.stack((c, d), axis=1))
    ).reshape(-1, 2)
    y = np.concatenate(
        (np.ones(a.shape[0], dtype=int), -np.ones(c.shape[0], dtype=int))
    )
    return np.asarray(X)[index], y
