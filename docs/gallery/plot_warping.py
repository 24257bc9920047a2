"""
How each learner warps a 2-D problem
====================================

Three classes are separated along the vertical axis, but the horizontal
axis carries a larger, useless spread. With the Euclidean distance the
3-nearest-neighbour rule is misled by it; each learner finds a linear map
``L`` that shrinks or stretches the directions, and the same kNN rule then
works in the mapped space.

Each learner gets two panels side by side: on the left the 3-NN decision
regions in the input space, with the distance the learner learned; on the
right the points after the map ``x -> L x`` (the space in which the learned
distance is Euclidean), with a grid of the input space mapped alongside.
The loop runs over every learner in ``linmetric.__all__`` that learns from
class labels, so a newly added learner appears here.
"""

import inspect
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.neighbors import KNeighborsClassifier

import linmetric

rng = np.random.default_rng(0)


def sample(n_per_class):
    """Three horizontal stripes: the class shows only in the vertical axis."""
    labels = np.repeat(np.arange(3), n_per_class)
    points = np.column_stack(
        [
            rng.normal(0.0, 3.0, size=labels.size),  # wide and useless
            1.0 * labels + rng.normal(0.0, 0.3, size=labels.size),  # narrow
        ]
    )
    return points, labels


X, y = sample(30)
X_test, y_test = sample(200)

# %%
# Every transformer learner of the package, with its defaults. MLKR learns
# from real-valued targets, not classes: it has its own example.

NOT_FROM_CLASSES = {"MLKR": "learns from real-valued targets"}


def transformer_learners():
    """(name, estimator) for every public learner that maps data."""
    for name in linmetric.__all__:
        cls = getattr(linmetric, name)
        if (
            not isinstance(cls, type)
            or not issubclass(cls, linmetric.MetricLearner)
            or cls is linmetric.MetricLearner
        ):
            continue
        if name in NOT_FROM_CLASSES:
            print(f"{name}: skipped ({NOT_FROM_CLASSES[name]})")
            continue
        params = inspect.signature(cls).parameters
        kwargs = {"random_state": 0} if "random_state" in params else {}
        yield name, cls(**kwargs)


fitted = [("Euclidean", None)]
for name, learner in transformer_learners():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            learner.fit(X, y)
    except Exception as exc:  # a learner that needs more than labels
        print(f"{name}: skipped ({type(exc).__name__}: {exc})")
        continue
    fitted.append((name, learner))


def mapped(learner, points):
    return points if learner is None else learner.transform(points)


# %%
# Decision regions before and after, and the warped space. The first pair of
# panels is the Euclidean distance, the starting point of every learner.

colors = np.array(["tab:blue", "tab:orange", "tab:green"])
span_x = np.linspace(X[:, 0].min() - 1, X[:, 0].max() + 1, 200)
span_y = np.linspace(X[:, 1].min() - 1, X[:, 1].max() + 1, 200)
grid = np.column_stack([a.ravel() for a in np.meshgrid(span_x, span_y)])

per_row = 4  # learners per row of the figure, two panels each
n_rows = -(-len(fitted) // per_row)
fig, axes = plt.subplots(
    n_rows, 2 * per_row, figsize=(2.2 * 2 * per_row, 2.5 * n_rows), squeeze=False
)
for index, (name, learner) in enumerate(fitted):
    row, column = divmod(index, per_row)
    knn = KNeighborsClassifier(n_neighbors=3).fit(mapped(learner, X), y)
    accuracy = knn.score(mapped(learner, X_test), y_test)
    regions = knn.predict(mapped(learner, grid)).reshape(span_y.size, span_x.size)
    top = axes[row, 2 * column]
    top.contourf(
        span_x, span_y, regions, levels=[-0.5, 0.5, 1.5, 2.5], colors=colors, alpha=0.2
    )
    top.scatter(X[:, 0], X[:, 1], c=colors[y], s=8)
    top.set_title(f"{name}: 3-NN accuracy {accuracy:.2f}", fontsize=9, loc="left")
    top.set_xticks([])
    top.set_yticks([])

    bottom = axes[row, 2 * column + 1]
    Z = mapped(learner, X)
    if Z.shape[1] < 2:  # a one-dimensional map: draw it on a line
        Z = np.column_stack([Z[:, 0], np.zeros(len(Z))])
    for value in np.linspace(span_x[0], span_x[-1], 9):  # mapped grid lines
        line = mapped(learner, np.column_stack([np.full(50, value), span_y[::4]]))
        bottom.plot(
            line[:, 0],
            line[:, 1] if line.shape[1] > 1 else 0 * line[:, 0],
            color="0.85",
            lw=0.6,
        )
    for value in np.linspace(span_y[0], span_y[-1], 9):
        line = mapped(learner, np.column_stack([span_x[::4], np.full(50, value)]))
        bottom.plot(
            line[:, 0],
            line[:, 1] if line.shape[1] > 1 else 0 * line[:, 0],
            color="0.85",
            lw=0.6,
        )
    bottom.scatter(Z[:, 0], Z[:, 1], c=colors[y], s=8)
    bottom.set_aspect("equal", adjustable="datalim")
    bottom.set_xticks([])
    bottom.set_yticks([])
    bottom.set_title("mapped: x -> L x", fontsize=8, color="0.4")
for ax in axes.flat[2 * len(fitted) :]:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %%
# Whitening and Covariance use no labels: they equalise the variance of
# both axes, which here already helps, since the useless axis had the larger
# variance. NCA and ITML use the labels and shrink the horizontal axis much
# further, until the classes are the nearest neighbours of each other;
# KISSME and MMC go all the way, to a metric of (nearly) rank one that keeps
# only the vertical direction, so the mapped points lie on a line. LMNN,
# which starts from a rescaled PCA map, ends close to whitening on this
# problem; the LMNN example that follows watches its iterations from the
# Euclidean map instead.
