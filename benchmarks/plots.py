"""Figures of benchmark records (matplotlib, PNG files)."""

import math
import textwrap
from pathlib import Path

import numpy as np

from .methods import METHODS

_MARKERS = "osD^v<>pPX*h"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _groups(records, *keys):
    """Records grouped by the values of ``keys``, in order of appearance."""
    groups = {}
    for record in records:
        groups.setdefault(tuple(record[key] for key in keys), []).append(record)
    return groups


def plot_accuracy_vs_time(records, path):
    """kNN test accuracy against warm fit time, one panel per data set.

    Each (method, library) pair has a colour (its method) and a marker (its
    library). With several runs of a pair (seeds, folds), every run is a small
    dot and the mean a large marker (at the geometric mean of the times) with
    a bar of one standard deviation of the accuracy. Methods without a fit (the Euclidean baseline) are a dashed
    line at their mean accuracy, shaded over one standard deviation. One
    legend, outside the panels, serves the figure; the time axis is
    logarithmic.
    """
    plt = _pyplot()
    done = [r for r in records if r["status"] == "ok" and r["knn_accuracy"] is not None]
    datasets = list(dict.fromkeys(r["dataset"] for r in done))
    if not datasets:
        return None
    libraries = list(dict.fromkeys(r["library"] for r in done))
    methods = list(dict.fromkeys(r["method"] for r in done))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    columns = min(len(datasets), 2)
    rows = math.ceil(len(datasets) / columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(5.2 * columns + 2.8, 3.8 * rows),
        squeeze=False,
        layout="constrained",
    )
    legend = {}
    most_runs = 1
    for axis, dataset in zip(axes.flat, datasets, strict=False):
        mine = [r for r in done if r["dataset"] == dataset]
        for (method, library), runs in _groups(mine, "method", "library").items():
            colour = colours[methods.index(method) % len(colours)]
            accuracy = np.array([r["knn_accuracy"] for r in runs])
            seconds = np.array([r["fit_seconds"] or 0.0 for r in runs])
            most_runs = max(most_runs, len(runs))
            label = f"{method} ({library})"
            spread = accuracy.std(ddof=1) if len(runs) > 1 else 0.0
            if not seconds.any():
                artist = axis.axhline(
                    accuracy.mean(), color="0.35", linestyle="--", linewidth=1.2
                )
                if spread:
                    axis.axhspan(
                        accuracy.mean() - spread,
                        accuracy.mean() + spread,
                        color="0.35",
                        alpha=0.12,
                        linewidth=0,
                    )
                legend.setdefault(label, artist)
                continue
            marker = _MARKERS[libraries.index(library) % len(_MARKERS)]
            if len(runs) > 1:
                axis.scatter(
                    seconds, accuracy, marker=marker, color=colour, s=14, alpha=0.35
                )
            artist = axis.errorbar(
                np.exp(np.log(np.maximum(seconds, 1e-9)).mean()),
                accuracy.mean(),
                yerr=spread if len(runs) > 1 else None,
                marker=marker,
                color=colour,
                markersize=8,
                capsize=3,
                linestyle="none",
            )
            legend.setdefault(label, artist)
        axis.set_xscale("log")
        axis.margins(y=0.08)  # markers at accuracy 1.0 stay whole
        axis.set_title(dataset)
        axis.set_xlabel("warm fit time (s)")
        axis.set_ylabel(f"{done[0]['n_neighbors']}-NN test accuracy")
        axis.grid(True, which="both", alpha=0.3)
    for axis in list(axes.flat)[len(datasets) :]:
        axis.set_visible(False)
    if most_runs > 1:
        figure.suptitle(
            f"large markers: mean over up to {most_runs} runs (seeds or folds), "
            "bars and bands: one standard deviation; dots: single runs",
            fontsize="medium",
        )
    figure.legend(
        legend.values(), legend.keys(), loc="outside right upper", fontsize="small"
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def _objective(method):
    text = METHODS[method].objective if method in METHODS else "loss"
    return "\n".join(textwrap.wrap(text, 28))


def plot_loss_curves(records, path):
    """The objective per iteration of the iterative learners.

    One row of panels per data set and one column per learner, since the
    objectives differ (each panel's axis names its learner's: ITML's LogDet
    divergence to the prior grows as the constraints are met, it does not
    diverge). Each line is one run (seed or fold); the iteration axis has
    whole numbers only.
    """
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    curves = [r for r in records if r["status"] == "ok" and r.get("loss_curve")]
    datasets = list(dict.fromkeys(r["dataset"] for r in curves))
    methods = list(dict.fromkeys(r["method"] for r in curves))
    if not datasets:
        return None
    figure, axes = plt.subplots(
        len(datasets),
        len(methods),
        figsize=(3.9 * len(methods), 2.9 * len(datasets) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    most_runs = 1
    for row, dataset in enumerate(datasets):
        for column, method in enumerate(methods):
            axis = axes[row, column]
            chosen = [
                r for r in curves if r["dataset"] == dataset and r["method"] == method
            ]
            if not chosen:
                axis.set_visible(False)
                continue
            most_runs = max(most_runs, len(chosen))
            for record in chosen:
                curve = record["loss_curve"]
                axis.plot(
                    range(1, len(curve) + 1),
                    curve,
                    color=colours[column % len(colours)],
                    alpha=1.0 if len(chosen) == 1 else 0.45,
                    linewidth=1.2,
                )
            values = np.concatenate([r["loss_curve"] for r in chosen])
            if values.min() > 0 and values.max() > 20 * values.min():
                axis.set_yscale("log")  # only when the curves span decades
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_title(f"{dataset}: {method}", fontsize="medium")
            axis.set_xlabel("iteration")
            axis.set_ylabel(_objective(method), fontsize="small")
            axis.grid(True, alpha=0.3)
    if most_runs > 1:
        figure.suptitle(
            f"each line is one run (up to {most_runs} seeds or folds per panel)",
            fontsize="medium",
        )
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def write_plots(records, directory, *, prefix=""):
    """Write every figure into ``directory``; return the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        plot_accuracy_vs_time(records, directory / f"{prefix}accuracy_vs_fit_time.png"),
        plot_loss_curves(records, directory / f"{prefix}loss_curves.png"),
    ]
    return [path for path in written if path is not None]
