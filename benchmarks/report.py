"""Tables on the terminal, JSON and CSV files of benchmark records."""

import csv
import json
import math

import numpy as np

from .runner import RECORD_FIELDS


def _load_cell(record):
    """``before>after`` one-minute load averages, ``!`` when the run was busy."""
    loads = (record.get("load_before"), record.get("load_after"))
    if None in loads:
        return "-"
    return f"{loads[0]:.1f}>{loads[1]:.1f}" + ("!" if record.get("busy") else "")


# (header, record field, format) of the terminal table; a column whose field
# no record has is left out
_COLUMNS = (
    ("dataset", "dataset", "{}"),
    ("method", "method", "{}"),
    ("library", "library", "{}"),
    ("seed", "seed", "{}"),
    ("warm s", "fit_seconds", "{:.3f}"),
    ("cold s", "cold_fit_seconds", "{:.3f}"),
    ("tuples", "n_tuples", "{}"),
    ("kNN acc", "knn_accuracy", "{:.4f}"),
    ("pair AUC", "pair_auc", "{:.4f}"),
    ("pair acc", "pair_accuracy", "{:.4f}"),
    ("trip acc", "triplet_accuracy", "{:.4f}"),
    ("quad acc", "quadruplet_accuracy", "{:.4f}"),
    ("kNN RMSE", "knn_rmse", "{:.3f}"),
    ("kNN R2", "knn_r2", "{:.4f}"),
    ("kern RMSE", "kernel_rmse", "{:.3f}"),
    ("kern R2", "kernel_r2", "{:.4f}"),
    ("energy acc", "energy_accuracy", "{:.4f}"),
    ("P@1", "precision_at_1", "{:.4f}"),
    ("MAP@R", "map_at_r", "{:.4f}"),
    ("NMI", "nmi", "{:.3f}"),
    ("ARI", "ari", "{:.3f}"),
    ("iter", "n_iter", "{}"),
    ("mem MiB", "peak_memory_mib", "{:.0f}"),
    ("peer/ours", "speedup_vs_peer", "{:.1f}x"),
    ("cold p/o", "cold_speedup_vs_peer", "{:.1f}x"),
    ("load", "load_before", _load_cell),
)
_ALWAYS_SHOWN = ("dataset", "method", "library", "fit_seconds")


def _cell(value, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def aligned(headers, rows, numeric):
    """Header, rule and rows as text lines; the columns in ``numeric`` right-aligned."""
    widths = [
        max([len(headers[i]), *(len(row[i]) for row in rows)])
        for i in range(len(headers))
    ]
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()
        for cells in (headers, ["-" * w for w in widths], *rows)
    ]


def format_table(records, *, show_notes=True):
    """Render records as an aligned text table, notes listed below it.

    ``warm s`` is the median warm fit time, ``cold s`` the first fit in a
    fresh process (:mod:`benchmarks.timing`). The kNN column uses each
    record's own ``n_neighbors``; the pairs suite's columns (``pair AUC``,
    ``pair acc``, ``trip acc``, ``quad acc``) and the regression suite's
    (``kNN RMSE``, ``kern RMSE`` and their R^2) are
    :func:`benchmarks.scoring.tuple_scores` and
    :func:`benchmarks.scoring.regression_scores`; ``peer/ours`` (warm) and ``cold p/o`` are a
    peer's fit time divided by linmetric's on the same data (above 1:
    linmetric is faster); ``load`` the one-minute load average before and
    after the run, ``!`` marking a busy machine. Runs that did not complete
    show their status in place of numbers, with the reason under the table.
    """
    seeds = {record["seed"] for record in records}
    columns = [
        (header, field, fmt)
        for header, field, fmt in _COLUMNS
        if field in _ALWAYS_SHOWN
        or (field == "seed" and len(seeds) > 1)
        or (field != "seed" and any(r.get(field) is not None for r in records))
    ]
    rows, notes = [], []
    for record in records:
        row = []
        for _, field, fmt in columns:
            if record["status"] != "ok" and field == "fit_seconds":
                row.append(record["status"])
            elif callable(fmt):
                row.append(fmt(record))
            else:
                row.append(_cell(record.get(field), fmt))
        if record.get("note") and show_notes:
            notes.append(
                f"[{len(notes) + 1}] {record['dataset']} {record['method']} "
                f"({record['library']}): {record['note']}"
            )
            row[-1] += f" [{len(notes)}]"
        rows.append(row)
    headers = [header for header, _, _ in columns]
    lines = aligned(headers, rows, numeric=range(3, len(headers)))
    out = lines[:2]
    previous = None
    for record, line in zip(records, lines[2:], strict=True):
        if previous is not None and record["dataset"] != previous:
            out.append("")
        previous = record["dataset"]
        out.append(line)
    if notes:
        out.append("")
        out.extend(note[:300] for note in notes)
    return "\n".join(out)


def busy_warning(records, *, per_cpu):
    """A sentence when some runs had a busy machine, else ''."""
    busy = [record for record in records if record.get("busy")]
    if not busy:
        return ""
    highest = max(
        load
        for record in busy
        for load in (record["load_before"], record["load_after"])
        if load is not None
    )
    return (
        f"{len(busy)} of {len(records)} runs saw a load average above {per_cpu:g} "
        f"per CPU (up to {highest:.2f}); their times are contended, not "
        "quiet-machine figures."
    )


def format_cv_table(records, *, show_notes=True):
    """Summarise cross-validation records: one row per data set and method.

    The test error of a run is ``1 - knn_accuracy``; ``mean error`` and
    ``std`` are the mean and the sample standard deviation (``ddof=1``) of it
    over the completed runs (folds x repetitions), ``warm s`` and ``cold s``
    the mean warm and cold fit seconds (the latter when measured) and ``runs`` the number of completed runs out of those started.
    Distinct notes of the runs (warnings, errors) are listed below the table.

    Examples
    --------
    >>> records = [
    ...     {"dataset": "iris", "method": "euclidean", "library": "baseline",
    ...      "status": "ok", "knn_accuracy": acc, "fit_seconds": 0.0, "note": ""}
    ...     for acc in (0.96, 0.94)
    ... ]
    >>> print(format_cv_table(records))
    dataset  method     library   mean error     std  warm s  cold s  runs
    -------  ---------  --------  ----------  ------  ------  ------  ----
    iris     euclidean  baseline      0.0500  0.0141   0.000       -   2/2
    """
    groups = {}
    for record in records:
        key = (record["dataset"], record["method"], record["library"])
        groups.setdefault(key, []).append(record)
    headers = ["dataset", "method", "library", "mean error", "std", "warm s", "cold s"]
    headers.append("runs")
    rows, notes = [], []
    for (dataset, method, library), runs in groups.items():
        done = [r for r in runs if r["status"] == "ok"]
        errors = np.array([1.0 - r["knn_accuracy"] for r in done])
        seconds = np.array([r["fit_seconds"] for r in done])
        cold = [r.get("cold_fit_seconds") for r in done]
        cold = None if None in cold or not cold else float(np.mean(cold))
        row = [dataset, method, library]
        if done:
            std = errors.std(ddof=1) if errors.size > 1 else None
            row += [
                f"{errors.mean():.4f}",
                _cell(std, "{:.4f}"),
                f"{seconds.mean():.3f}",
                _cell(cold, "{:.3f}"),
            ]
        else:
            row += [runs[0]["status"], "-", "-", "-"]
        row.append(f"{len(done)}/{len(runs)}")
        group_notes = list(dict.fromkeys(r["note"] for r in runs if r.get("note")))
        if group_notes and show_notes:
            notes.append(f"[{len(notes) + 1}] {dataset} {method} ({library}): ")
            notes[-1] += " | ".join(group_notes)
            row[-1] += f" [{len(notes)}]"
        rows.append(row)
    out = aligned(headers, rows, numeric=range(3, len(headers)))
    if notes:
        out.append("")
        out.extend(note[:300] for note in notes)
    return "\n".join(out)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(records, path):
    """Write the records as a JSON list, one object per run."""
    with open(path, "w") as stream:
        json.dump(_jsonable(records), stream, indent=1)
        stream.write("\n")


def _flatten_environment(environment):
    flat = {
        "env_timestamp": environment.get("timestamp"),
        "env_python": environment.get("python"),
        "env_platform": environment.get("platform"),
        "env_cpu": environment.get("cpu"),
        "env_cpu_count": environment.get("cpu_count"),
        "env_cpus_available": environment.get("cpus_available"),
        "env_numba_threads": environment.get("numba_threads"),
    }
    for name, version in (environment.get("versions") or {}).items():
        flat[f"env_version_{name}"] = version
    flat["env_blas"] = "; ".join(
        f"{pool.get('internal_api')} {pool.get('version')} "
        f"({pool.get('num_threads')} threads)"
        for pool in environment.get("blas") or []
    )
    flat["env_thread_variables"] = json.dumps(environment.get("thread_variables") or {})
    return flat


def write_csv(records, path):
    """Write one CSV row per run: the record's fields, then its environment.

    ``params`` and ``patches`` are JSON-encoded in their cells; the loss curve
    is left to the JSON output.
    """
    rows = []
    for record in records:
        row = {field: record.get(field) for field in RECORD_FIELDS}
        row["params"] = json.dumps(_jsonable(record.get("params") or {}))
        row["patches"] = json.dumps(_jsonable(record.get("patches") or []))
        row.update(_flatten_environment(record.get("environment") or {}))
        rows.append(row)
    fieldnames = []
    for row in rows:
        fieldnames.extend(key for key in row if key not in fieldnames)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fieldnames or list(RECORD_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
