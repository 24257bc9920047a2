"""Tests of the benchmark suite: CLI, records, scoring, peers plumbing."""

import csv
import importlib.util
import io
import json
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

import benchmarks.data
import benchmarks.grid
import benchmarks.peers
import benchmarks.peers.setup_env
import benchmarks.runner
import linmetric
from benchmarks import cli, timing
from benchmarks.data import Split, load_embedded
from benchmarks.grid import Task, run_task
from benchmarks.methods import METHODS, Method, method_names
from benchmarks.peers import PEER_METHOD, PEERS, RUNNER, run_peer
from benchmarks.progress import Progress
from benchmarks.report import busy_warning, format_table
from benchmarks.runner import (
    RECORD_FIELDS,
    add_speed_ratios,
    run_linmetric,
    summary_line,
    warm_up,
)
from benchmarks.scoring import clustering_scores, knn_accuracy, retrieval_scores
from benchmarks.timing import cold_and_warm_seconds, timed_fits

# ------------------------------------------------------------------ scoring


def test_retrieval_scores_by_hand():
    Z_train = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    y_train = np.array([0, 0, 0, 1, 1])
    # query of class 0 at 1.9: ranking 2.0(0) 1.0(0) 0.0(0) -> AP@3 = 1
    # query of class 1 at 5.0: ranking 2.0(0) 1.0(0) -> R = 2, AP@2 = 0
    # query of class 1 at 6.4: ranking 10(1) 2.0(0) -> AP@2 = (1/2) * 1 = 0.5
    Z_test = np.array([[1.9], [5.0], [6.4]])
    y_test = np.array([0, 1, 1])
    scores = retrieval_scores(Z_train, y_train, Z_test, y_test, chunk_size=2)
    assert scores["precision_at_1"] == pytest.approx(2 / 3)
    assert scores["map_at_r"] == pytest.approx((1.0 + 0.0 + 0.5) / 3)


def test_retrieval_scores_perfect_separation():
    rng = np.random.RandomState(0)
    centres = np.repeat(np.eye(3) * 100, 20, axis=0)
    Z = centres + rng.normal(size=centres.shape)
    y = np.repeat(np.arange(3), 20)
    scores = retrieval_scores(Z[::2], y[::2], Z[1::2], y[1::2])
    assert scores == {"precision_at_1": 1.0, "map_at_r": 1.0}
    clusters = clustering_scores(Z, y, seed=0)
    assert clusters["nmi"] == pytest.approx(1.0) and clusters["ari"] == pytest.approx(
        1.0
    )
    assert knn_accuracy(Z[::2], y[::2], Z[1::2], y[1::2], 3) == 1.0


# ----------------------------------------------------------------- stand-ins


class StandInLearner(TransformerMixin, BaseEstimator):
    """A tiny iterative learner: scales features, reports iterations."""

    def __init__(self, n_neighbors=3, max_iter=4, random_state=None, callback=None):
        self.n_neighbors = n_neighbors
        self.max_iter = max_iter
        self.random_state = random_state
        self.callback = callback

    def fit(self, X, y):
        self.components_ = np.eye(X.shape[1]) * 2.0
        losses = []
        for n_iter in range(1, self.max_iter + 1):
            losses.append(1.0 / n_iter)
            if self.callback is not None:
                self.callback(self.components_, n_iter)
        self.n_iter_ = self.max_iter
        self.loss_curve_ = np.array(losses)
        return self

    def transform(self, X):
        return np.asarray(X) @ self.components_.T


class FailingLearner(StandInLearner):
    def fit(self, X, y):
        raise RuntimeError("diverged")


@pytest.fixture
def stand_in_methods(monkeypatch):
    monkeypatch.setattr(linmetric, "StandInLearner", StandInLearner, raising=False)
    monkeypatch.setattr(linmetric, "FailingLearner", FailingLearner, raising=False)
    stand_in = Method("nca", "StandInLearner", "stand-in", seeded=True, iterative=True)
    monkeypatch.setitem(METHODS, "nca", stand_in)
    monkeypatch.setitem(METHODS, "itml", Method("itml", "FailingLearner", "fails"))
    monkeypatch.setitem(METHODS, "lmnn", Method("lmnn", "NoSuchLearner", "missing"))


@pytest.fixture(scope="module")
def iris_split():
    return load_embedded("iris", seed=0)


# ------------------------------------------------------------------- runner


def test_embedded_split_is_stratified_and_standardised(iris_split):
    assert iris_split.X_train.shape == (105, 4) and iris_split.X_test.shape == (45, 4)
    np.testing.assert_allclose(iris_split.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(iris_split.X_train.std(axis=0), 1.0)
    np.testing.assert_array_equal(np.bincount(iris_split.y_test), [15, 15, 15])
    again = load_embedded("iris", seed=0)
    np.testing.assert_array_equal(again.X_test, iris_split.X_test)
    with pytest.raises(ValueError, match="dataset='mnist' is not an embedded"):
        load_embedded("mnist")


def test_run_linmetric_records(stand_in_methods, iris_split):
    seen = []
    progress = types.SimpleNamespace(callback=lambda c, n: seen.append(n))
    record = run_linmetric(iris_split, "nca", seed=1, progress=progress, cold=False)
    assert set(RECORD_FIELDS) <= set(record)
    assert record["status"] == "ok" and record["library"] == "linmetric"
    assert record["n_iter"] == 4 and seen == [1, 2, 3, 4]
    assert record["loss_curve"] == [1.0, 0.5, 1 / 3, 0.25]
    assert record["params"]["random_state"] == 1
    for field in ("knn_accuracy", "precision_at_1", "map_at_r", "nmi", "ari"):
        assert 0.0 <= record[field] <= 1.0 or field == "ari"
    assert record["fit_seconds"] >= 0 and record["transform_seconds"] >= 0
    assert record["n_components"] == 4

    failed = run_linmetric(iris_split, "itml", cold=False)
    assert failed["status"] == "error" and "RuntimeError: diverged" in failed["note"]
    missing = run_linmetric(iris_split, "lmnn")
    assert missing["status"] == "unavailable"
    assert "linmetric.NoSuchLearner is not available" in missing["note"]
    assert "unavailable" in summary_line(missing)
    table = format_table([record, failed, missing])
    assert "unavailable" in table and "error" in table and "diverged" in table


def test_warm_up_runs_a_whole_fit(stand_in_methods, iris_split, monkeypatch):
    # a capped fit would leave the kernels of later stages to compile inside
    # the first timed fit
    fitted = []
    real_fit = StandInLearner.fit

    def fit(self, X, y):
        fitted.append((self.max_iter, len(y)))
        return real_fit(self, X, y)

    monkeypatch.setattr(StandInLearner, "fit", fit)
    warm_up(iris_split, "nca")
    # the whole fit on the warm-up slice: 20 rows of each of the 3 classes
    assert fitted == [(4, 60)]


def test_method_rejects_unknown_parameter(stand_in_methods):
    bad = Method("bad", "StandInLearner", "stand-in", (("learning_rate", 1),))
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['learning_rate'\]"):
        bad.make()
    with pytest.raises(SystemExit, match="--methods got unknown value"):
        cli.comma_list("lmnn,svm", option="--methods", choices=method_names())


def test_registry_drives_the_common_parameters():
    lmnn = METHODS["lmnn"].make(n_neighbors=5, seed=3, max_iter=7)
    assert (lmnn.n_neighbors, lmnn.random_state, lmnn.max_iter) == (5, 3, 7)
    assert lmnn.push_weight == 0.5
    itml = METHODS["itml"].make(n_neighbors=5, seed=3)
    assert itml.random_state == 3 and itml.max_iter == linmetric.ITML().max_iter
    assert METHODS["whitening"].make(seed=3).get_params()["method"] == "pca"
    # every peer a method names is a known peer, and every peer has a method
    assert set(PEER_METHOD) == set(PEERS)
    assert PEER_METHOD["pylmnn-lmnn"] == "lmnn" and PEER_METHOD["sklearn-nca"] == "nca"


def test_speed_ratio_against_peer():
    ours = dict.fromkeys(RECORD_FIELDS)
    ours.update(dataset="d", seed=0, method="nca", library="linmetric", status="ok")
    ours.update(fit_seconds=2.0, cold_fit_seconds=4.0)
    peer = dict(ours, library="scikit-learn", fit_seconds=6.0, cold_fit_seconds=2.0)
    add_speed_ratios([ours, peer])
    assert peer["speedup_vs_peer"] == pytest.approx(3.0)
    assert peer["cold_speedup_vs_peer"] == pytest.approx(0.5)
    assert ours["speedup_vs_peer"] is None
    table = format_table([ours, peer])
    assert "3.0x" in table and "0.5x" in table and "cold s" in table


def test_progress_live_line_and_summaries():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    with Progress(2, stream=terminal, refresh=0.01) as progress:
        progress.start("digits lmnn")
        progress.callback(None, 7)
        progress._draw()
        progress.finish("first done")
        progress.start("digits nca")
        progress.finish("second done")
    text = terminal.getvalue()
    assert "\r" in text and "iter 7" in text and "digits lmnn" in text
    assert "[1/2] first done" in text and "[2/2] second done" in text

    log = io.StringIO()  # not a terminal: only the summary lines
    with Progress(1, stream=log) as progress:
        progress.start("x")
        progress.callback(None, 3)
        progress.finish("only line")
    assert log.getvalue() == "[1/1] only line\n"


# ---------------------------------------------------------------------- CLI


def test_cli_quick_smoke(tmp_path, capsys, stand_in_methods):
    json_path, csv_path = tmp_path / "r.json", tmp_path / "r.csv"
    status = cli.main(
        [
            "--datasets",
            "iris,wine",
            "--methods",
            "euclidean,whitening,nca,lmnn",
            "--seeds",
            "0,1",
            "-k",
            "5",
            "--json",
            str(json_path),
            "--csv",
            str(csv_path),
            "--no-cold",
        ]
    )
    assert status == 0
    out, err = capsys.readouterr()
    assert "kNN acc" in out and "MAP@R" in out and "whitening" in out
    assert "[16/16]" in err  # one summary line per run, no more
    assert len(err.splitlines()) < 25

    records = json.loads(json_path.read_text())
    assert len(records) == 2 * 2 * 4
    assert {r["dataset"] for r in records} == {"iris", "wine"}
    assert {r["seed"] for r in records} == {0, 1}
    for record in records:
        assert set(RECORD_FIELDS) <= set(record)
        assert record["n_neighbors"] == 5
        environment = record["environment"]
        assert environment["versions"]["numpy"] == np.__version__
        assert environment["cpu"] and environment["cpu_count"] >= 1
        assert "blas" in environment and "numba_threads" in environment
        assert "python" in environment and "thread_variables" in environment
    ok = [r for r in records if r["status"] == "ok"]
    assert {r["method"] for r in ok} == {"euclidean", "whitening", "nca"}
    for record in ok:
        for field in ("fit_seconds", "knn_accuracy", "precision_at_1", "map_at_r"):
            assert isinstance(record[field], float)
        assert isinstance(record["nmi"], float) and isinstance(record["ari"], float)
    assert all(r["status"] == "unavailable" for r in records if r["method"] == "lmnn")

    with open(csv_path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(records)
    assert rows[0]["env_version_numpy"] == np.__version__ and "env_blas" in rows[0]


def test_cli_plots(tmp_path, stand_in_methods):
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    argv = ["--datasets", "iris", "--methods", "euclidean,whitening,nca", "--quiet"]
    assert cli.main([*argv, "--no-cold", "--plots", str(plots)]) == 0
    assert {p.name for p in plots.iterdir()} == {
        "quick_accuracy_vs_fit_time.png",
        "quick_loss_curves.png",
    }
    for path in plots.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_cv_smoke(tmp_path, capsys):
    json_path, csv_path = tmp_path / "cv.json", tmp_path / "cv.csv"
    argv = ["cv", "--datasets", "iris", "--methods", "euclidean,whitening"]
    argv += ["--repeats", "1", "--json", str(json_path), "--csv", str(csv_path)]
    argv += ["--no-cold"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == [
        "dataset",
        "method",
        "library",
        "mean",
        "error",
        "std",
        "warm",
        "s",
        "cold",
        "s",
        "runs",
    ]
    assert lines[2].split()[:3] == ["iris", "euclidean", "baseline"]
    assert lines[3].split()[:3] == ["iris", "whitening", "linmetric"]
    assert lines[2].split()[-1] == lines[3].split()[-1] == "2/2"
    assert "[4/4]" in err

    records = json.loads(json_path.read_text())
    assert len(records) == 1 * 2 * 2 * 1  # data sets x methods x folds x repeats
    assert {(r["method"], r["fold"], r["seed"]) for r in records} == {
        (method, fold, 0) for method in ("euclidean", "whitening") for fold in (0, 1)
    }
    for record in records:
        assert set(RECORD_FIELDS) <= set(record)
        assert record["suite"] == "cv" and record["status"] == "ok"
        assert record["n_neighbors"] == 4 and record["n_train"] == 75
        assert record["data"]["n_folds"] == 2
        assert 0.0 <= 1.0 - record["knn_accuracy"] <= 1.0
        assert record["environment"]["versions"]["numpy"] == np.__version__
    euclidean = [r for r in records if r["method"] == "euclidean"]
    mean_error = np.mean([1.0 - r["knn_accuracy"] for r in euclidean])
    assert f"{mean_error:.4f}" in lines[2]
    with open(csv_path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["fold"] for row in rows] == ["0", "0", "1", "1"]


def test_cli_cv_rejects_peers_and_bad_folds():
    with pytest.raises(SystemExit, match="--with-peers is not supported"):
        cli.main(["cv", "--with-peers"])
    with pytest.raises(SystemExit, match="--folds=1 must be at least 2"):
        cli.main(["cv", "--folds", "1"])


def test_fold_splits_partition_the_data():
    folds = [benchmarks.data.load_embedded_fold("iris", 3, fold=f) for f in (0, 1)]
    assert [len(split.y_test) for split in folds] == [75, 75]
    np.testing.assert_array_equal(np.bincount(folds[0].y_test), [25, 25, 25])
    np.testing.assert_allclose(folds[0].X_train.mean(axis=0), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="fold=2 must be in"):
        benchmarks.data.load_embedded_fold("iris", fold=2)


def test_cli_rejects_unknown_dataset():
    with pytest.raises(SystemExit, match="--datasets got unknown value"):
        cli.main(["quick", "--datasets", "imagenet"])


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("iris", "digits", "lmnn", "nca", "itml", "whitening", "pylmnn-lmnn"):
        assert name in out
    for text in ("diabetes", "friedman1", "pairs (triplets)", "metric-learn-mlkr"):
        assert text in out


def test_cli_mnist_suite_on_stand_in_data(monkeypatch, tmp_path, capsys):
    rng = np.random.RandomState(0)

    def fake_pca(data_home, n_components, name="mnist"):
        y_train = np.repeat(np.arange(10), 30)
        y_test = np.repeat(np.arange(10), 10)
        Z_train = rng.normal(size=(300, n_components)) + y_train[:, None]
        Z_test = rng.normal(size=(100, n_components)) + y_test[:, None]
        return Z_train, y_train, Z_test, y_test

    monkeypatch.setattr(benchmarks.data, "_mnist_pca", fake_pca)
    json_path = tmp_path / "m.json"
    argv = ["mnist", "--methods", "euclidean,whitening", "--n-components", "8"]
    argv += ["--subsample", "100", "--test-subsample", "50", "--json", str(json_path)]
    argv += ["--no-cold"]
    assert cli.main(argv) == 0
    records = json.loads(json_path.read_text())
    assert [r["method"] for r in records] == ["euclidean", "whitening"]
    assert all(r["suite"] == "mnist" and r["dataset"] == "mnist" for r in records)
    assert records[0]["n_train"] == 100 and records[0]["n_test"] == 50
    assert records[0]["n_features"] == 8
    assert "mnist" in capsys.readouterr().out


def test_cli_kernels_suite(monkeypatch, capsys):
    fake = types.ModuleType("benchmarks.kernels")
    calls = []

    def run(n=20000, d=164, dtypes=("float32",), quick=False):
        calls.append((n, d, dtypes, quick))
        return [{"kernel": "distances", "seconds": 0.1}]

    fake.run = run
    fake.format_table = lambda records: f"{len(records)} kernel record(s)"
    monkeypatch.setitem(sys.modules, "benchmarks.kernels", fake)
    monkeypatch.setattr(benchmarks, "kernels", fake, raising=False)
    argv = ["kernels", "--n", "500", "--d", "8", "--dtypes", "float32,float64"]
    assert cli.main([*argv, "--quick"]) == 0
    assert calls == [(500, 8, ("float32", "float64"), True)]
    assert "1 kernel record(s)" in capsys.readouterr().out


# -------------------------------------------------------------------- peers


def test_peer_runner_script_round_trip(tmp_path, iris_split):
    data = tmp_path / "data.npz"
    np.savez(
        data,
        X_train=iris_split.X_train,
        y_train=iris_split.y_train,
        X_test=iris_split.X_test,
    )
    result = tmp_path / "result.npz"
    command = [sys.executable, str(RUNNER), "--input", str(data), "--output"]
    command += [str(result), "--method", "euclidean"]
    subprocess.run(command, check=True, capture_output=True)
    with np.load(result) as stored:
        np.testing.assert_array_equal(stored["components"], np.eye(4))
        meta = json.loads(str(stored["meta"]))
    assert meta["fit_seconds"] >= 0 and meta["cold_fit_seconds"] >= 0
    assert 1 <= meta["fit_repeats"] <= timing.MAX_FITS
    assert meta["environment"]["versions"]["numpy"]


def test_run_peer_sklearn_nca(iris_split):
    record = run_peer(iris_split, "sklearn-nca", seed=0, max_iter=5)
    assert record["status"] == "ok", record["note"]
    assert record["fit_seconds"] > 0 and record["cold_fit_seconds"] > 0
    assert record["library"] == "scikit-learn" and record["method"] == "nca"
    assert record["library_version"] and isinstance(record["n_iter"], int)
    assert 0.5 < record["knn_accuracy"] <= 1.0
    assert record["peer_environment"]["executable"]


def test_run_peer_without_environment(monkeypatch, iris_split):
    monkeypatch.setattr(benchmarks.peers, "peers_python", lambda: None)
    record = run_peer(iris_split, "pylmnn-lmnn")
    assert record["status"] == "unavailable" and "peers-setup" in record["note"]


def test_peer_failure_is_reported(monkeypatch, tmp_path):
    # a split the runner cannot fit: scikit-learn rejects NaN
    X = np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0], [2.0, 0.0]])
    split = Split("tiny", X, np.array([0, 0, 1, 1]), X, np.array([0, 0, 1, 1]))
    record = run_peer(split, "sklearn-nca")
    assert record["status"] == "error" and "runner exited" in record["note"]


def test_peer_names():
    def peers(text, methods, with_peers=True):
        args = types.SimpleNamespace(peers=text, with_peers=with_peers)
        return cli._selected_peers(args, methods)

    assert peers("all", ["nca"]) == [
        name for name in PEERS if PEER_METHOD[name] == "nca"
    ]
    assert "mlpack-lmnn" not in peers("default", ["lmnn"])
    assert "mlpack-lmnn" in peers("all", ["lmnn"])
    assert peers("all", ["lmnn"], with_peers=False) == []
    with pytest.raises(SystemExit, match="--peers got unknown value"):
        peers("weka", ["lmnn"])


def test_apply_patches_records_diff_and_is_idempotent(monkeypatch, tmp_path):
    package = tmp_path / "pylmnn"
    package.mkdir()
    source = "params = {\n    'x0': transformation,\n    'tol': tol,\n}\n"
    (package / "lmnn.py").write_text(source)
    setup_env = benchmarks.peers.setup_env
    monkeypatch.setattr(setup_env, "_package_dir", lambda python, name: package)
    monkeypatch.setattr(setup_env, "_version", lambda python, name: "1.6.4")
    first = setup_env.apply_patches("python", log=lambda message: None)
    patched = (package / "lmnn.py").read_text()
    assert "'x0': transformation.ravel()," in patched
    assert first[0]["package"] == "pylmnn" and first[0]["version"] == "1.6.4"
    assert "+    'x0': transformation.ravel()," in first[0]["diff"]
    second = setup_env.apply_patches("python", log=lambda message: None)
    assert second == first and (package / "lmnn.py").read_text() == patched

    (package / "lmnn.py").write_text("something else\n")
    with pytest.raises(RuntimeError, match="cannot patch"):
        setup_env.apply_patches("python", log=lambda message: None)


class StandInEnergy:
    """Wraps a fitted learner; classifies by 1-NN in its space."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y):
        from sklearn.neighbors import KNeighborsClassifier

        Z = self.estimator.transform(X)
        self.classifier_ = KNeighborsClassifier(n_neighbors=1).fit(Z, y)
        return self

    def score(self, X, y):
        return self.classifier_.score(self.estimator.transform(X), y)


def test_lmnn_records_energy_rule(monkeypatch, iris_split):
    monkeypatch.setattr(linmetric, "StandInLearner", StandInLearner, raising=False)
    monkeypatch.setitem(vars(linmetric), "EnergyClassifier", StandInEnergy)
    stand_in = Method("lmnn", "StandInLearner", "stand-in", energy_rule=True)
    monkeypatch.setitem(METHODS, "lmnn", stand_in)
    record = run_linmetric(iris_split, "lmnn", cold=False)
    assert record["status"] == "ok"
    assert 0.8 < record["energy_accuracy"] <= 1.0 and record["energy_seconds"] >= 0
    assert "energy acc" in summary_line(record)


def test_only_fits_under_a_second_are_timed_again():
    def clock_of(readings):
        return iter(readings).__next__

    calls = []
    slow = timed_fits(lambda: calls.append(1), clock=clock_of([0.0, 2.5]))
    assert slow == [2.5] and len(calls) == 1
    half_seconds = [0.5 * tick for tick in range(10)]
    fast = timed_fits(lambda: calls.append(1), clock=clock_of(half_seconds))
    assert fast == [0.5] * 5 and len(calls) == 6


def test_two_pass_lmnn_is_a_method_of_its_own(iris_split):
    record = run_linmetric(iris_split, "lmnn2", cold=False)
    assert record["status"] == "ok", record["note"]
    assert record["energy_accuracy"] is not None
    assert 1 <= record["fit_repeats"] <= 5
    assert METHODS["lmnn2"].make(n_neighbors=3, seed=0).n_passes == 2
    assert "lmnn2" in method_names()


def test_timing_rule_cold_then_warm_up_then_warm_fits():
    readings = iter([0.0, 0.75] + [0.25 * tick for tick in range(10, 20)])
    calls = []
    cold, warm = cold_and_warm_seconds(
        lambda: calls.append("fit"),
        lambda: calls.append("warm-up"),
        clock=readings.__next__,
    )
    # the cold fit is timed alone; the warm-up is not timed; sub-second warm
    # fits are repeated up to MAX_FITS times
    assert cold == 0.75 and warm == [0.25] * timing.MAX_FITS
    assert calls == ["fit", "warm-up"] + ["fit"] * timing.MAX_FITS
    readings = iter([0.0, 1.5])
    calls.clear()
    assert cold_and_warm_seconds(
        lambda: calls.append("fit"), None, warm=False, clock=readings.__next__
    ) == (1.5, None)
    assert calls == ["fit"]


def test_peer_runner_follows_the_same_rule(monkeypatch, tmp_path, iris_split):
    # the runner, loaded as a module, with a recording method in place of a peer
    spec = importlib.util.spec_from_file_location("peer_runner", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    sizes = []

    def recording_fit(args):
        def fit(X, y):
            sizes.append(len(y))
            return runner._Fitted(np.eye(X.shape[1]))

        return fit

    monkeypatch.setitem(runner.PEER_FITS, "recording", recording_fit)
    data, result = tmp_path / "data.npz", tmp_path / "result.npz"
    np.savez(
        data,
        X_train=iris_split.X_train,
        y_train=iris_split.y_train,
        X_test=iris_split.X_test,
    )
    argv = ["--input", str(data), "--output", str(result), "--method", "recording"]
    assert runner.main(argv) == 0
    # cold fit of the training set, the warm-up slice, then the warm fits
    n_warm = len(sizes) - 2
    assert sizes == [105, 60] + [105] * n_warm and 1 <= n_warm <= timing.MAX_FITS
    # linmetric's side: the same warm-up slice before the warm fits
    fitted = []
    real_fit = StandInLearner.fit

    def fit(self, X, y):
        fitted.append(len(y))
        return real_fit(self, X, y)

    monkeypatch.setattr(linmetric, "StandInLearner", StandInLearner, raising=False)
    monkeypatch.setattr(StandInLearner, "fit", fit)
    stand_in = Method("nca", "StandInLearner", "stand-in", iterative=True)
    monkeypatch.setitem(METHODS, "nca", stand_in)
    run_linmetric(iris_split, "nca", cold=False)
    assert fitted == [60] + [105] * (len(fitted) - 1)


def test_cold_fit_of_linmetric_runs_in_a_fresh_process(iris_split):
    record = run_linmetric(iris_split, "whitening", cold=True)
    assert record["status"] == "ok", record["note"]
    assert record["cold_fit_seconds"] > 0 and record["fit_seconds"] >= 0


def test_cold_fit_of_a_classifier_without_one_map(iris_split):
    # LocalSCML has neither components_ nor transform
    record = run_linmetric(iris_split, "localscml", cold=True)
    assert record["status"] == "ok", record["note"]
    assert "cold fit" not in record["note"]
    assert record["cold_fit_seconds"] > 0 and record["n_components"] is None


def test_load_average_is_recorded_and_busy_runs_warned(monkeypatch, iris_split):
    loads = iter([0.25, 9.0])
    monkeypatch.setattr(benchmarks.grid, "load_average", loads.__next__)
    task = Task(
        suite="quick",
        loader=lambda name, seed: iris_split,
        dataset="iris",
        seed=0,
        kind="linmetric",
        name="euclidean",
        busy_load=0.5,
    )
    record = run_task(task)
    assert (record["load_before"], record["load_after"]) == (0.25, 9.0)
    assert record["busy"] is True
    assert "0.2>9.0!" in format_table([record])
    warning = busy_warning([record, dict(record, busy=False)], per_cpu=0.5)
    assert warning.startswith("1 of 2 runs saw a load average above 0.5 per CPU")
    assert "up to 9.00" in warning
    assert timing.is_busy(0.1, 1.1, per_cpu=0.5, cpus=2)
    assert not timing.is_busy(0.1, 0.9, per_cpu=0.5, cpus=2)
    assert not timing.is_busy(None, None, cpus=2)


def test_grid_in_parallel_threads_and_dask(tmp_path):
    LocalCluster = pytest.importorskip("dask.distributed").LocalCluster

    argv = ["--datasets", "iris", "--methods", "euclidean,whitening", "--seeds", "0,1"]
    argv += ["--quiet", "--n-jobs", "2", "--no-cold"]
    json_path = tmp_path / "threads.json"
    assert cli.main([*argv, "--backend", "threading", "--json", str(json_path)]) == 0
    threaded = json.loads(json_path.read_text())
    assert [r["executor"] for r in threaded] == ["threading:2"] * 4

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        dask_path = tmp_path / "dask.json"
        dask_argv = ["--backend", "dask", "--scheduler", cluster.scheduler_address]
        assert cli.main([*argv, *dask_argv, "--json", str(dask_path)]) == 0
    on_dask = json.loads(dask_path.read_text())
    assert all(r["executor"].startswith("dask:") for r in on_dask)
    # same runs, same order, same scores as in threads
    for ours, theirs in zip(threaded, on_dask, strict=True):
        assert (ours["method"], ours["seed"]) == (theirs["method"], theirs["seed"])
        assert ours["knn_accuracy"] == theirs["knn_accuracy"]


def test_failed_cold_fit_keeps_the_warm_result(monkeypatch, iris_split):
    def fail(*args, **kwargs):
        raise benchmarks.peers.RunFailed("timeout", "no result after 9 s")

    monkeypatch.setattr(benchmarks.runner, "cold_fit_seconds", fail)
    record = run_linmetric(iris_split, "whitening", cold=True)
    assert record["status"] == "ok" and record["fit_seconds"] is not None
    assert record["cold_fit_seconds"] is None
    assert record["note"] == "cold fit: timeout: no result after 9 s"


def test_a_learner_without_callback_still_runs(monkeypatch, iris_split):
    class Quiet(StandInLearner):
        callback = None  # not a parameter: fit reads it, the signature lacks it

        def __init__(self, max_iter=4, random_state=None):
            self.max_iter = max_iter
            self.random_state = random_state

    monkeypatch.setattr(linmetric, "Quiet", Quiet, raising=False)
    monkeypatch.setitem(
        METHODS, "nca", Method("nca", "Quiet", "quiet", seeded=True, iterative=True)
    )
    progress = types.SimpleNamespace(callback=lambda c, n: None)
    record = run_linmetric(iris_split, "nca", progress=progress, max_iter=2, cold=False)
    assert record["status"] == "ok", record["note"]
    assert record["n_iter"] == 2 and record["params"]["max_iter"] == 2


# ------------------------------------------------- pairs and regression suites


def _tiny_tuple_split(n_tuples=40):
    return benchmarks.data.load_embedded_tuples("iris", seed=0, n_tuples=n_tuples)


# fitted through the suite by the tests above (LMNN's kernels take long to compile)
FITTED_ABOVE = ("lmnn", "lmnn2", "nca")


@pytest.mark.parametrize("name", [name for name in METHODS if name != "euclidean"])
def test_every_registry_entry_builds_and_fits(name):
    """Each entry fits its suite's data: labels, targets and, if any, its tuples."""
    method = METHODS[name]
    rng = np.random.RandomState(0)
    # few iterations keep the iterative learners quick; only the plumbing is tested
    make = {"n_neighbors": 3, "seed": 0, "max_iter": 3 if method.iterative else None}
    X = rng.normal(size=(45, 4))
    if method.task == "regression":
        y = X[:, 0] + 0.1 * rng.normal(size=45)
    else:
        y = np.repeat([0, 1, 2], 15)
        X += y[:, np.newaxis]
    estimator = method.make(**make)
    if method.seeded:
        assert estimator.random_state == 0
    if name in FITTED_ABOVE:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few iterations: convergence warnings
        estimator.fit(X, y)
        if method.classifier:  # scored by its own rule
            assert set(estimator.predict(X)) <= {0, 1, 2}
        else:
            assert np.all(np.isfinite(estimator.transform(X)))
        if method.tuples is not None:
            split = _tiny_tuple_split()
            points, labels = split.tuple_points(method.tuples)
            wrapped = method.make_tuple_estimator(**make)
            wrapped.fit(points) if labels is None else wrapped.fit(points, labels)
            assert wrapped.components_.shape[1] == 4


def test_a_classifier_is_scored_by_its_own_rule(iris_split):
    record = run_linmetric(iris_split, "mmlmnn", cold=False)
    assert record["status"] == "ok", record["note"]
    assert 0.9 <= record["knn_accuracy"] <= 1.0
    assert record["n_components"] == 4 and record["transform_seconds"] >= 0


def test_method_names_per_suite():
    classification = method_names()
    assert "mlkr" not in classification and "mmc" in classification
    assert method_names("regression") == ["euclidean", "mlkr"]
    pairs = method_names("pairs")
    assert pairs[0] == "euclidean"
    assert {"itml", "mmc", "sdml", "kissme", "gmml", "scml", "lsml"} <= set(pairs)
    assert all(METHODS[name].tuples for name in pairs[1:])
    quick = method_names(default_only=True)
    assert "mmc" not in quick and "lfda" in quick and "lmnn" in quick
    assert method_names("pairs", default_only=True) == pairs
    with pytest.raises(ValueError, match="task='ranking' must be one of"):
        method_names("ranking")
    # every tuple peer fits the kind of tuples of its method
    for peer in PEERS.values():
        method = METHODS[PEER_METHOD[peer.name]]
        assert peer.task in ("classification", "regression", method.tuples)
        assert peer.task != "regression" or method.task == "regression"


def test_peers_follow_the_suite_task():
    def peers(task, methods):
        args = types.SimpleNamespace(peers="default", with_peers=True, task=task)
        return cli._selected_peers(args, methods)

    assert peers("pairs", ["itml", "scml"]) == [
        "metric-learn-itml-pairs",
        "metric-learn-scml-triplets",
    ]
    assert peers("classification", ["itml", "scml"]) == [
        "metric-learn-itml",
        "metric-learn-scml",
    ]
    assert peers("regression", ["euclidean", "mlkr"]) == ["metric-learn-mlkr"]


def test_sampled_tuples_follow_the_labels():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])  # class 3 has a single row
    out = benchmarks.data.sample_tuples(y, 200, np.random.default_rng(1))
    pairs, labels = out["pairs"], out["pair_labels"]
    assert pairs.shape == (400, 2) and np.all(pairs[:, 0] != pairs[:, 1])
    np.testing.assert_array_equal(y[pairs[:, 0]] == y[pairs[:, 1]], labels == 1)
    assert np.sum(labels == 1) == 200
    a, b, c = out["triplets"].T
    assert np.all((y[a] == y[b]) & (a != b) & (y[a] != y[c]))
    a, b, c, d = out["quadruplets"].T
    assert np.all((y[a] == y[b]) & (a != b) & (y[c] != y[d]))
    # a single-row class is never an anchor, but can be a dissimilar partner
    assert 9 not in out["triplets"][:, :2] and 9 in pairs[labels == -1]
    again = benchmarks.data.sample_tuples(y, 200, np.random.default_rng(1))
    np.testing.assert_array_equal(again["triplets"], out["triplets"])
    with pytest.raises(ValueError, match="at least two classes"):
        benchmarks.data.sample_tuples(np.zeros(5), 3, np.random.default_rng(0))


def test_tuple_split_holds_train_and_test_tuples():
    split = _tiny_tuple_split(25)
    assert split.task == "pairs" and split.info["n_tuples"] == 25
    for part, n in (("train", len(split.X_train)), ("test", len(split.X_test))):
        points, labels = split.tuple_points("pairs", part)
        assert points.shape == (50, 2, 4) and labels.shape == (50,)
        assert split.tuples[f"quadruplets_{part}"].max() < n
    assert split.tuple_points("triplets")[1] is None
    default = benchmarks.data.load_embedded_tuples("iris", seed=0)
    assert default.info["n_tuples"] == 20 * 3**2


def test_accuracy_threshold_against_brute_force():
    rng = np.random.RandomState(0)
    for _ in range(20):
        distances = np.round(rng.uniform(size=30), 1)  # ties
        labels = np.where(rng.uniform(size=30) < 0.5, 1, -1)
        threshold = benchmarks.scoring.accuracy_threshold(distances, labels)
        accuracy = np.mean(np.where(distances < threshold, 1, -1) == labels)
        cuts = np.concatenate([[-1.0], np.unique(distances) + 0.05])
        best = max(np.mean(np.where(distances < t, 1, -1) == labels) for t in cuts)
        assert accuracy == pytest.approx(best)


def test_tuple_scores_of_a_separating_and_a_useless_map():
    split = _tiny_tuple_split(60)
    # a map that puts each class at its own point scores perfectly
    centres = np.eye(3) * 10
    perfect = benchmarks.scoring.tuple_scores(
        centres[split.y_train], centres[split.y_test], split.tuples
    )
    assert perfect == {
        "pair_auc": 1.0,
        "pair_accuracy": 1.0,
        "triplet_accuracy": 1.0,
        "quadruplet_accuracy": 1.0,
    }
    # the zero map ties everything: chance AUC, no triplet strictly satisfied
    zero = benchmarks.scoring.tuple_scores(
        np.zeros((len(split.X_train), 1)),
        np.zeros((len(split.X_test), 1)),
        split.tuples,
    )
    assert zero["pair_auc"] == 0.5 and zero["triplet_accuracy"] == 0.0


def test_kernel_regression_matches_the_formula_and_survives_far_queries():
    rng = np.random.RandomState(0)
    Z_train, y_train = rng.normal(size=(30, 2)), rng.normal(size=30)
    Z_test = rng.normal(size=(7, 2))
    weights = np.exp(-(((Z_test[:, None, :] - Z_train[None, :, :]) ** 2).sum(-1)))
    expected = weights @ y_train / weights.sum(1)
    got = benchmarks.scoring.kernel_regression(Z_train, y_train, Z_test, chunk_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    far = benchmarks.scoring.kernel_regression(Z_train, y_train, Z_test * 1e3)
    assert np.all(np.isfinite(far))
    scores = benchmarks.scoring.regression_scores(
        Z_train, y_train, Z_train, y_train, n_neighbors=1
    )
    assert scores["knn_rmse"] == 0.0 and scores["knn_r2"] == 1.0


def test_cli_pairs_smoke(tmp_path, capsys):
    json_path = tmp_path / "pairs.json"
    argv = ["pairs", "--datasets", "iris", "--methods", "euclidean,kissme"]
    argv += ["--n-tuples", "30", "--no-cold", "--quiet", "--json", str(json_path)]
    assert cli.main(argv) == 0
    out, _ = capsys.readouterr()
    assert "pair AUC" in out and "trip acc" in out and "MAP@R" not in out
    records = json.loads(json_path.read_text())
    assert [r["method"] for r in records] == ["euclidean", "kissme"]
    for record in records:
        assert record["status"] == "ok" and record["n_tuples"] == 30
        for field in ("pair_auc", "pair_accuracy", "triplet_accuracy", "knn_accuracy"):
            assert 0.0 <= record[field] <= 1.0
    with pytest.raises(SystemExit, match="--n-tuples=0"):
        cli.main(["pairs", "--n-tuples", "0"])


def test_cli_regression_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(linmetric, "StandInLearner", StandInLearner, raising=False)
    stand_in = Method(
        "mlkr",
        "StandInLearner",
        "stand-in",
        seeded=True,
        iterative=True,
        task="regression",
    )
    monkeypatch.setitem(METHODS, "mlkr", stand_in)
    json_path = tmp_path / "regression.json"
    argv = ["regression", "--datasets", "diabetes", "--no-cold", "--quiet"]
    assert cli.main([*argv, "--json", str(json_path)]) == 0
    out, _ = capsys.readouterr()
    assert "kNN RMSE" in out and "kern R2" in out and "kNN acc" not in out
    baseline, learned = json.loads(json_path.read_text())
    assert baseline["n_neighbors"] == 5 and baseline["n_classes"] is None
    # the stand-in doubles the space: kNN is unchanged, the kernel narrower
    assert learned["knn_rmse"] == pytest.approx(baseline["knn_rmse"])
    assert learned["kernel_rmse"] != pytest.approx(baseline["kernel_rmse"])
    assert learned["n_iter"] == 4


def test_peer_runner_fits_tuples(monkeypatch, tmp_path):
    """The runner fits tuples: a peer gets them as points, linmetric wraps its learner."""
    spec = importlib.util.spec_from_file_location("peer_runner", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    seen = []

    def recording_fit(args):
        def fit(X, y):
            seen.append((X.shape, y))
            return runner._Fitted(np.eye(X.shape[-1]))

        return fit

    monkeypatch.setitem(runner.PEER_FITS, "recording", recording_fit)
    split = _tiny_tuple_split(30)
    data, result = tmp_path / "data.npz", tmp_path / "result.npz"
    benchmarks.peers.write_runner_input(data, split, "triplets")
    argv = ["--input", str(data), "--output", str(result), "--fits", "cold"]
    assert runner.main([*argv, "--method", "recording", "--task", "triplets"]) == 0
    assert seen == [((30, 3, 4), None)]

    benchmarks.peers.write_runner_input(data, split, "pairs")
    assert runner.main([*argv, "--method", "kissme", "--task", "pairs"]) == 0
    with np.load(result) as stored:
        meta = json.loads(str(stored["meta"]))
        assert stored["components"].shape == (4, 4)
    assert meta["cold_fit_seconds"] > 0 and meta["warnings"] == []
    runner_task = benchmarks.runner.runner_task
    assert runner_task(split, "scml") == "triplets"
    assert runner_task(split, "lsml") == "quadruplets"


def test_mnist_protocol_pixel_max_scales_the_arrays_exactly(monkeypatch):
    def fake_pca(data_home, n_components, name="mnist"):
        rng = np.random.RandomState(0)
        y = np.repeat(np.arange(10), 5)
        return (rng.normal(size=(50, n_components)), y) * 2

    monkeypatch.setattr(benchmarks.data, "_mnist_pca", fake_pca)
    unit = benchmarks.data.load_mnist_protocol(n_components=6)
    raw = benchmarks.data.load_mnist_protocol(n_components=6, pixel_max=255)
    np.testing.assert_array_equal(raw.X_train, 255 * unit.X_train)
    np.testing.assert_array_equal(raw.X_test, 255 * unit.X_test)
    assert raw.info["preprocessing"].startswith("pixels*255/255")
    assert unit.info["preprocessing"].startswith("pixels/255")
    for bad in (0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match=r"pixel_max=.* positive finite"):
            benchmarks.data.load_mnist_protocol(n_components=6, pixel_max=bad)
