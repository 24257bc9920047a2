"""LMNN's working set of candidate impostors, refreshed where it goes stale.

A search for point ``i`` at some map keeps the pairs ``(i, l)``,
``y_l != y_i``, with ``d(i, l) < s r_i``, where ``r_i = max_j d(i, j) + 1``
is its margin then and ``s = CANDIDATE_SCALE``. Every evaluation of the
loss computes the exact distances of all candidates and target pairs and
measures, as a low quantile ``q`` of the ratios ``d_now / d_then``, how much
distances have shrunk since their search. The points outside the
candidates were at least ``s r_i`` away then, so about ``q s r_i`` now:
point ``i`` is stale when its current margin exceeds that, and only stale
points are searched again (all points at once, by the blocked full search,
when many are stale). That estimate is a heuristic; after :meth:`reset`
with ``guaranteed=True`` a bound replaces it (see
:meth:`ImpostorSet._stale_guaranteed`).
"""

import numpy as np

from ._kernels import find_impostors, sq_distances_of_pairs
from ._kernels.impostors import sort_pairs
from ._kernels.lmnn import impostors_of_rows, ratios_by_group

# Candidate impostors of a point i are the points of other classes with
# d(i, l) < CANDIDATE_SCALE * (max_j d(i, j) + 1) when they were gathered:
# a margin enlarged so that the candidates stay valid while the map moves.
CANDIDATE_SCALE = 1.3
# How far distances may have shrunk since a point's candidates were
# gathered is estimated by this low quantile of the measured ratios
# d_now / d_then over its candidate and target pairs ...
SHRINK_QUANTILE = 1e-2
# ... measured on about this many pairs ...
RATIO_SAMPLE = 50_000
# ... separately for the points searched at each map of reference that has
# at least this many measured ratios (the others share one quantile).
MIN_GROUP_SAMPLE = 200
# When more than this fraction of the points is stale, one full search
# replaces the per-point searches.
FULL_SEARCH_FRACTION = 0.3
# Beyond this many maps of reference (one per partial search), a full search
# starts afresh.
MAX_REFERENCES = 30


class ImpostorSet:
    """Candidate impostor pairs ``(rows[p], cols[p])``, sorted by row.

    Parameters
    ----------
    y : ndarray of shape (n_samples,), intp
        Class codes.
    spread : ndarray of shape (n_samples,), float64
        ``||x_i - c||`` for some centre ``c``, for the guaranteed test.
    working_memory : float or None
        Budget in MiB for one block of the searches.
    """

    def __init__(self, y, spread, working_memory):
        self.y = y
        self.working_memory = working_memory
        # ||x_i - c|| + max_l ||x_l - c|| bounds ||x_i - x_l|| for every l.
        self.spread = spread + spread.max()
        self.n_searches = 0
        self.n_partial_searches = 0
        self.reset(guaranteed=False)

    def reset(self, *, guaranteed):
        """Forget the candidates: the next :meth:`update` searches all points.

        ``guaranteed`` chooses the staleness test from then on: the estimate
        (False) or the bound (True), which never lets a pair inside a margin
        go unseen.
        """
        self.guaranteed = guaranteed
        self.rows = self.cols = self.indptr = None
        # the squared distances, margins and target distances of each point
        # at its last search, and the maps of reference
        self.ref_sq = self.ref_margins = self.target_ref = None
        self.references = []
        self.reference_of = None

    def search(self, Z, radii):
        """The pairs ``(i, l)``, ``y_l != y_i``, with ``d(i, l) < radii[i]``.

        The distances are float32 GEMM expansions, checked exactly near the
        radius by the kernel but on ``Z`` rounded to float32: a pair within
        float32 rounding of the radius may fall on either side.
        """
        rows, cols, _ = find_impostors(
            Z.astype(np.float32, copy=False),
            self.y,
            radii,
            working_memory=self.working_memory,
        )
        self.n_searches += 1
        return rows, cols

    def update(self, L, Z, target_sq):
        """Refresh stale candidates for the map ``L`` (``Z = X L^T``).

        Returns the float64 squared distances of the candidate pairs.
        """
        margins = target_sq.max(axis=1) + 1.0
        if self.rows is None or len(self.references) > MAX_REFERENCES:
            return self._full(L, Z, target_sq, margins)
        pair_sq = sq_distances_of_pairs(
            Z, self.rows, self.cols, dtype=np.float64, check_indices=False
        )
        if self.guaranteed:
            stale = self._stale_guaranteed(L, margins)
        else:
            stale = self._stale_estimated(pair_sq, target_sq, margins)
        n_stale = int(np.count_nonzero(stale))
        if n_stale == 0:
            return pair_sq
        if n_stale > FULL_SEARCH_FRACTION * margins.shape[0]:
            return self._full(L, Z, target_sq, margins)
        stale_rows = np.flatnonzero(stale)
        # float32 search with radii enlarged by CANDIDATE_SCALE, so rounding
        # near the margin does not matter; exact distances follow.
        new_rows, new_cols = impostors_of_rows(
            Z.astype(np.float32, copy=False),
            self.y,
            stale_rows,
            CANDIDATE_SCALE * margins,
            working_memory=self.working_memory,
        )
        self.n_partial_searches += 1
        new_sq = sq_distances_of_pairs(
            Z, new_rows, new_cols, dtype=np.float64, check_indices=False
        )
        keep = ~stale[self.rows]
        rows, cols, pair_sq, ref_sq = sort_pairs(
            np.concatenate([self.rows[keep], new_rows]),
            np.concatenate([self.cols[keep], new_cols]),
            margins.shape[0],
            np.concatenate([pair_sq[keep], new_sq]),
            np.concatenate([self.ref_sq[keep], new_sq]),
        )
        self.ref_margins[stale_rows] = margins[stale_rows]
        self.target_ref[stale_rows] = target_sq[stale_rows]
        self.reference_of[stale_rows] = len(self.references)
        self.references.append(L.copy())
        self._store(rows, cols, ref_sq)
        return pair_sq

    def missed(self, Z, margins):
        """Whether a full search at ``margins`` finds pairs not in the set."""
        rows, cols = self.search(Z, margins)
        n_samples = self.y.shape[0]
        codes = self.rows * n_samples + self.cols  # sorted by (row, col)
        query = rows * n_samples + cols
        if codes.shape[0] == 0:
            return query.shape[0] > 0
        where = np.minimum(np.searchsorted(codes, query), codes.shape[0] - 1)
        return not bool(np.all(codes[where] == query))

    def _store(self, rows, cols, ref_sq):
        n_samples = self.y.shape[0]
        self.rows, self.cols, self.ref_sq = rows, cols, ref_sq
        self.indptr = np.zeros(n_samples + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=n_samples), out=self.indptr[1:])

    def _full(self, L, Z, target_sq, margins):
        rows, cols = self.search(Z, CANDIDATE_SCALE * margins)
        pair_sq = sq_distances_of_pairs(
            Z, rows, cols, dtype=np.float64, check_indices=False
        )
        self.ref_margins = margins.copy()
        self.target_ref = target_sq.copy()
        self.references = [L.copy()]
        self.reference_of = np.zeros(margins.shape[0], dtype=np.intp)
        self._store(rows, cols, pair_sq.copy())
        return pair_sq

    def _stale_estimated(self, pair_sq, target_sq, margins):
        # Distances of the points outside the candidates are assumed to have
        # shrunk no more than a low quantile of the measured ones, measured
        # separately for the points searched at each map of reference.
        stride = max(1, pair_sq.shape[0] // RATIO_SAMPLE)
        n_groups = len(self.references)
        ratios, bounds = ratios_by_group(
            pair_sq,
            self.ref_sq,
            self.rows,
            stride,
            target_sq,
            self.target_ref,
            self.reference_of,
            n_groups,
        )
        shrink = np.ones(n_groups)
        if ratios.size:
            overall = None  # computed when a group is too small for its own
            for group in range(n_groups):
                members = ratios[bounds[group] : bounds[group + 1]]
                if members.size >= MIN_GROUP_SAMPLE or n_groups == 1:
                    shrink[group] = np.quantile(members, SHRINK_QUANTILE)
                else:
                    if overall is None:
                        overall = np.quantile(ratios, SHRINK_QUANTILE)
                    shrink[group] = overall
        return margins > shrink[self.reference_of] * CANDIDATE_SCALE * self.ref_margins

    def _stale_guaranteed(self, L, margins):
        # For l outside the candidates of i, searched at L_ref:
        # ||L v|| >= ||L_ref v|| - ||L - L_ref||_2 ||v|| with v = x_i - x_l,
        # ||L_ref v||^2 >= s r_ref_i and ||v|| <= spread_i. So l cannot be
        # inside the margin while the bound below stays above sqrt(margin).
        moves = np.array(
            [np.linalg.norm(L - reference, ord=2) for reference in self.references]
        )
        lowest = np.sqrt(CANDIDATE_SCALE * self.ref_margins) - (
            moves[self.reference_of] * self.spread
        )
        return np.sqrt(margins) >= lowest
