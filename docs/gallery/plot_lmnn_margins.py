"""
LMNN: target neighbours, impostors and margins over the iterations
==================================================================

LMNN gives every point ``i`` its ``k`` nearest points of the same class as
*target neighbours* and asks that every point ``l`` of another class stay
outside the *margin* of ``i``: ``d(i, l) >= d(i, j) + 1`` for each target
neighbour ``j`` (squared distances). A point of another class inside the
margin is an *impostor*.

Here a 2-D problem is fitted with ``callback`` recording the map after every
iteration. The panels show the data mapped by ``L`` at four moments: grey
lines join points to their target neighbours, red lines join points to
their impostors, and the circles are the margins of two chosen points (the
radius is ``sqrt(1 + max_j d(i, j))``). The pull term shortens the grey
lines, the push term drives the red ones out of the circles.
"""

import matplotlib.pyplot as plt
import numpy as np

from linmetric import LMNN

rng = np.random.default_rng(1)
n_per_class = 20
y = np.repeat(np.arange(3), n_per_class)
X = np.column_stack(
    [
        rng.normal(0.0, 2.0, size=y.size),  # wide, no class information
        1.0 * y + rng.normal(0.0, 0.15, size=y.size),  # narrow stripes
    ]
)

iterates = []
lmnn = LMNN(
    n_neighbors=3,
    init="identity",
    loss="hinge",  # the paper's hinge: small steps
    max_iter=300,
    random_state=0,
    callback=lambda components, n_iter: iterates.append(components.copy()),
)
lmnn.fit(X, y)
iterates.insert(0, np.eye(2))  # the starting map, before any step
targets = lmnn.target_neighbors_
print(f"{lmnn.n_iter_} iterations")

# %%
# Target neighbours and impostors of a map.


def geometry(L):
    Z = X @ L.T
    sq = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
    target_sq = np.take_along_axis(sq, targets, axis=1)
    margin_sq = target_sq.max(axis=1) + 1.0
    other_class = y[:, None] != y[None, :]
    impostors = np.argwhere(other_class & (sq < margin_sq[:, None]))
    return Z, margin_sq, impostors


colors = np.array(["tab:blue", "tab:orange", "tab:green"])
chosen = [5, 30]
moments = sorted({0, 5, 30, len(iterates) - 1})
fig, axes = plt.subplots(1, len(moments) + 1, figsize=(4 * (len(moments) + 1), 4.2))
for ax, moment in zip(axes, moments, strict=False):
    Z, margin_sq, impostors = geometry(iterates[moment])
    for i, row in enumerate(targets):
        for j in row:
            ax.plot(*Z[[i, j]].T, color="0.7", lw=0.7, zorder=1)
    for i, l in impostors:
        ax.plot(*Z[[i, l]].T, color="tab:red", lw=0.7, alpha=0.6, zorder=2)
    ax.scatter(Z[:, 0], Z[:, 1], c=colors[y], s=14, zorder=3)
    for i in chosen:
        ax.add_patch(
            plt.Circle(
                Z[i],
                np.sqrt(margin_sq[i]),
                fill=False,
                color=colors[y[i]],
                lw=1.5,
                ls="--",
            )
        )
        ax.scatter(*Z[i], s=80, facecolor="none", edgecolor="k", zorder=4)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"iteration {moment}: {len(impostors)} impostor pairs", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])

history = lmnn.history_
ax = axes[-1]
steps = np.arange(1, lmnn.n_iter_ + 1)
ax.plot(steps, history["loss"], color="k", label="loss")
ax.set_xlabel("iteration")
ax.set_ylabel("loss")
twin = ax.twinx()
twin.plot(steps, history["active_impostors"], color="tab:red", label="impostors")
twin.set_ylabel("active impostor pairs", color="tab:red")
ax.set_title("loss and impostors", fontsize=10)
ax.xaxis.get_major_locator().set_params(integer=True)
fig.tight_layout()
plt.show()

# %%
# The first panel is the Euclidean distance: the wide horizontal spread
# puts points of other classes inside many margins. As the iterations go,
# the map shrinks the horizontal axis and stretches the vertical one, the
# target neighbours come closer and the impostors leave the margins.
