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

Memory. The set never holds more than ``max_pairs`` pairs, the byte budget
divided by ``BYTES_PER_PAIR``. When the candidates at ``CANDIDATE_SCALE``
would be more, the margin is enlarged by ``NARROW_CANDIDATE_SCALE`` only:
fewer candidates per point, which go stale sooner and are searched again
more often. When even those are too many, :meth:`ImpostorSet.update`
returns None and the loss is computed by visiting every pair in blocks
(:func:`linmetric._kernels.lmnn.streamed_push_terms`), as long as the pairs
counted on the way do not fit the budget. Each fallback computes the same
loss: only time changes, never the objective.
"""

import numpy as np

from ._kernels import find_impostors, sq_distances_of_pairs
from ._kernels._chunking import get_working_memory
from ._kernels.impostors import sort_pairs
from ._kernels.lmnn import impostors_of_rows, low_quantile, ratios_by_group

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
# Bytes counted per candidate pair against the budget: its row, column and
# reference distance, the distance and gradient weight of one evaluation,
# and the copies made while a search assembles pairs or candidates merge.
BYTES_PER_PAIR = 96
# The margin enlargement used when the candidates at CANDIDATE_SCALE do not
# fit the budget.
NARROW_CANDIDATE_SCALE = 1.02
_MIB = 2**20


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
    memory : float or None, default=None
        Budget in MiB for the candidate pairs (``BYTES_PER_PAIR`` bytes
        each); None means ``working_memory``'s value.
    """

    def __init__(self, y, spread, working_memory, memory=None):
        self.y = y
        self.working_memory = working_memory
        budget = get_working_memory(working_memory if memory is None else memory)
        self.max_pairs = int(budget * _MIB // BYTES_PER_PAIR)
        self.n_streamed = 0
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
        self.scale = CANDIDATE_SCALE
        # True while the pairs exceed the budget and the loss is streamed;
        # the count of the last streamed evaluation says when they fit again
        self.streaming = False
        self.streamed_count = None
        # the squared distances, margins and target distances of each point
        # at its last search, and the maps of reference
        self.ref_sq = self.ref_margins = self.target_ref = None
        self.references = []
        self.reference_of = None

    @property
    def nbytes(self):
        """int, bytes counted against the budget for the pairs held now."""
        return 0 if self.rows is None else self.rows.shape[0] * BYTES_PER_PAIR

    def search(self, Z, radii):
        """The pairs ``(i, l)``, ``y_l != y_i``, with ``d(i, l) < radii[i]``.

        The distances are float32 GEMM expansions, checked exactly near the
        radius by the kernel but on ``Z`` rounded to float32: a pair within
        float32 rounding of the radius may fall on either side. None when
        there are more than ``max_pairs``.
        """
        self.n_searches += 1
        found = find_impostors(
            Z.astype(np.float32, copy=False),
            self.y,
            radii,
            working_memory=self.working_memory,
            max_pairs=self.max_pairs,
        )
        return None if found is None else found[:2]

    def record_stream(self, n_candidates):
        """Note a streamed evaluation that counted ``n_candidates`` pairs
        inside ``NARROW_CANDIDATE_SCALE`` times their margins."""
        self.n_streamed += 1
        self.streamed_count = n_candidates

    def update(self, L, Z, target_sq):
        """Refresh stale candidates for the map ``L`` (``Z = X L^T``).

        Returns the float64 squared distances of the candidate pairs, or
        None when the pairs do not fit the budget: the caller then computes
        the loss over all pairs, in blocks, and calls :meth:`record_stream`.
        """
        margins = target_sq.max(axis=1) + 1.0
        if self.streaming:
            if self.streamed_count is None or self.streamed_count > self.max_pairs:
                return None
            return self._full(L, Z, target_sq, margins)
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
        keep = ~stale[self.rows]
        n_kept = int(np.count_nonzero(keep))
        # float32 search with radii enlarged by the candidate scale, so
        # rounding near the margin does not matter; exact distances follow.
        found = impostors_of_rows(
            Z.astype(np.float32, copy=False),
            self.y,
            stale_rows,
            self.scale * margins,
            working_memory=self.working_memory,
            max_pairs=self.max_pairs - n_kept,
        )
        self.n_partial_searches += 1
        if found is None:
            del keep, pair_sq
            return self._full(L, Z, target_sq, margins)
        new_rows, new_cols = found
        new_sq = sq_distances_of_pairs(
            Z, new_rows, new_cols, dtype=np.float64, check_indices=False
        )
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

    def missed(self, Z, margins, L=None):
        """Whether a search at ``margins`` finds pairs not in the set.

        When those pairs exceed the budget, the set missed some unless the
        loss was being streamed (exact over all pairs). With the map ``L``
        (``Z = X L^T``), only the points that :meth:`unproven` cannot clear
        are searched: none, some (a partial search), or all (a full one).
        """
        if L is None or self.streaming or self.rows is None:
            rows = None
        else:
            rows = np.flatnonzero(self.unproven(L, margins))
            if rows.shape[0] == 0:
                return False
            if rows.shape[0] > FULL_SEARCH_FRACTION * margins.shape[0]:
                rows = None
        if rows is None:
            found = self.search(Z, margins)
        else:
            self.n_partial_searches += 1
            found = impostors_of_rows(
                Z.astype(np.float32, copy=False),
                self.y,
                rows,
                margins,
                working_memory=self.working_memory,
                max_pairs=self.max_pairs,
            )
        if found is None:
            return not self.streaming
        if self.streaming:
            return False
        rows, cols = found
        n_samples = self.y.shape[0]
        codes = self.rows * n_samples + self.cols  # sorted by (row, col)
        query = rows * n_samples + cols
        if codes.shape[0] == 0:
            return query.shape[0] > 0
        where = np.minimum(np.searchsorted(codes, query), codes.shape[0] - 1)
        return not bool(np.all(codes[where] == query))

    def unproven(self, L, margins):
        """Points that may have an impostor inside ``margins`` outside the set.

        The points that the guaranteed test of :meth:`_stale_guaranteed`
        does not clear (all of them before any search).
        """
        if self.rows is None:
            return np.ones(margins.shape[0], dtype=bool)
        return self._stale_guaranteed(L, margins)

    def _store(self, rows, cols, ref_sq):
        n_samples = self.y.shape[0]
        self.rows, self.cols, self.ref_sq = rows, cols, ref_sq
        self.indptr = np.zeros(n_samples + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=n_samples), out=self.indptr[1:])

    def _full(self, L, Z, target_sq, margins):
        # free the old candidates first: the budget holds one set at a time
        self.rows = self.cols = self.indptr = self.ref_sq = None
        for scale in (CANDIDATE_SCALE, NARROW_CANDIDATE_SCALE):
            found = self.search(Z, scale * margins)
            if found is not None:
                break
        else:
            self.streaming = True
            self.streamed_count = None
            return None
        self.scale, self.streaming = scale, False
        rows, cols = found
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
        shrink = self._shrink(pair_sq, target_sq)
        return margins > shrink[self.reference_of] * self.scale * self.ref_margins

    def _shrink(self, pair_sq, target_sq):
        # The low quantile of each group's ratios (of all the groups' ratios
        # for a group with too few); the ratios are left unchanged, so each
        # group's quantile sees only its own.
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
                    shrink[group] = low_quantile(members, SHRINK_QUANTILE)
                else:
                    if overall is None:
                        overall = low_quantile(ratios, SHRINK_QUANTILE)
                    shrink[group] = overall
        return shrink

    def _stale_guaranteed(self, L, margins):
        # For l outside the candidates of i, searched at L_ref:
        # ||L v|| >= ||L_ref v|| - ||L - L_ref||_2 ||v|| with v = x_i - x_l,
        # ||L_ref v||^2 >= s r_ref_i and ||v|| <= spread_i. So l cannot be
        # inside the margin while the bound below stays above sqrt(margin).
        moves = np.array(
            [np.linalg.norm(L - reference, ord=2) for reference in self.references]
        )
        lowest = np.sqrt(self.scale * self.ref_margins) - (
            moves[self.reference_of] * self.spread
        )
        return np.sqrt(margins) >= lowest
