"""Command line of the benchmark suite: ``python -m benchmarks [suite] [options]``.

Suites and commands::

    python -m benchmarks                      quick suite (same as 'quick')
    python -m benchmarks quick [options]      iris, wine, breast_cancer, digits
    python -m benchmarks mnist [options]      the LMNN paper's MNIST protocol
    python -m benchmarks cv [options]         the ITML paper's cross-validation
    python -m benchmarks pairs [options]      weakly supervised: pairs, triplets, quadruplets
    python -m benchmarks regression [options] MLKR: kNN and kernel regression error
    python -m benchmarks kernels [options]    the numba kernel benchmark
    python -m benchmarks list                 data sets, methods, peers
    python -m benchmarks peers-setup          build the peers' environment

Options of ``quick`` and ``mnist``: ``--datasets``, ``--methods``, ``--seeds``,
``-k``, ``--max-iter``, ``--with-peers``, ``--peers``, ``--peer-timeout``,
``--no-cold``, ``--busy-load``, ``--n-jobs``, ``--backend``, ``--scheduler``, ``--json PATH``,
``--csv PATH``, ``--plots DIR``, ``--quiet``; ``pairs`` and ``regression``
take them too, ``pairs`` adds ``--n-tuples N``; ``mnist`` adds
``--subsample N``, ``--test-subsample N``, ``--n-components``,
``--pixel-max`` and ``--data-home DIR``. ``cv`` takes the same options but ``--seeds`` (its
repetitions are seeded 0, 1, ...) and the peers', and adds ``--folds`` and
``--repeats``. See ``benchmarks/README.md``.
"""

import argparse
import functools
import sys
import time

from .data import EMBEDDED_DATASETS, IMAGE_DATASETS, REGRESSION_DATASETS
from .methods import method_names
from .timing import BUSY_LOAD_PER_CPU


def comma_list(text, *, option, choices=None, cast=str):
    """The items of a comma-separated option; ``all`` (or nothing) means ``choices``.

    Values outside ``choices`` (when given) stop the command with a message
    naming the option.
    """
    if text in (None, "", "all") and choices is not None:
        return list(choices)
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    try:
        values = [cast(item) for item in items]
    except ValueError as exc:
        raise SystemExit(f"{option}: cannot read {text!r}: {exc}") from exc
    unknown = [
        value for value in values if choices is not None and value not in choices
    ]
    if unknown:
        raise SystemExit(
            f"{option} got unknown value(s) {unknown}; choose from "
            f"{', '.join(map(str, choices))} or 'all'."
        )
    return values


def _add_run_options(
    parser,
    *,
    datasets,
    default_datasets="all",
    default_methods="default",
    default_k=3,
    seeds=True,
    task="classification",
):
    parser.add_argument(
        "--datasets",
        default=default_datasets,
        help=f"comma-separated data sets ({', '.join(datasets)}) or 'all'",
    )
    chosen = method_names(task, default_only=True)
    parser.add_argument(
        "--methods",
        default=default_methods,
        help=f"comma-separated methods ({', '.join(method_names(task))}), 'all', "
        f"or 'default' ({', '.join(chosen)})",
    )
    parser.set_defaults(task=task)
    if seeds:
        parser.add_argument(
            "--seeds", default="0", help="comma-separated seeds of split and learners"
        )
    parser.add_argument(
        "-k",
        "--n-neighbors",
        type=int,
        default=default_k,
        help=f"k of the kNN rule and LMNN's target neighbours (default {default_k})",
    )
    parser.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="cap on the iterations of the iterative learners, ours and peers'",
    )
    parser.add_argument(
        "--with-peers",
        action="store_true",
        help="also run the other libraries (see 'peers-setup')",
    )
    parser.add_argument(
        "--peers",
        default="default",
        help="comma-separated peers to run with --with-peers (see 'list'); "
        "'default': all but mlpack's, 'all': every one",
    )
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=None,
        help="seconds after which a peer run, or the process of one of our cold "
        "fits, is stopped and reported as timeout",
    )
    parser.add_argument(
        "--no-cold",
        dest="cold",
        action="store_false",
        help="skip the cold fit (the first fit in a fresh process) of each run",
    )
    parser.add_argument(
        "--busy-load",
        type=float,
        default=BUSY_LOAD_PER_CPU,
        help="load average per CPU above which a run is marked busy "
        f"(default {BUSY_LOAD_PER_CPU})",
    )
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="parallel workers for the grid (default 1: in order, uncontended timings)",
    )
    parser.add_argument(
        "--backend",
        choices=("loky", "threading", "dask"),
        default=None,
        help="joblib backend for --n-jobs > 1; 'dask' uses a Dask cluster",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address for --backend dask (default: a LocalCluster)",
    )
    parser.add_argument("--json", metavar="PATH", help="write one record per run")
    parser.add_argument("--csv", metavar="PATH", help="write one row per run")
    parser.add_argument("--plots", metavar="DIR", help="write PNG figures here")
    parser.add_argument(
        "--quiet", action="store_true", help="print only the final table"
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of linmetric's learners against the Euclidean "
        "baseline and the other libraries. Without a command, runs 'quick'.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")

    quick = commands.add_parser(
        "quick",
        help="embedded data sets (standardised, stratified 70/30 split)",
        description="Every learner on scikit-learn's iris, wine, breast_cancer "
        "and digits: standardised, stratified 70/30 split, fixed seeds.",
    )
    _add_run_options(quick, datasets=EMBEDDED_DATASETS)

    mnist = commands.add_parser(
        "mnist",
        help="MNIST as in the LMNN paper (deskew, PCA 164, k=3, mu=0.5)",
        description="MNIST as in the LMNN paper: deskewed images, PCA to 164 "
        "dimensions fitted on the 60,000 training images, k = 3, mu = 0.5, "
        "learners fitted on the training set, 3-NN error on the 10,000 test images. "
        "--datasets fashion-mnist applies the same protocol (without deskewing) "
        "to Fashion-MNIST.",
    )
    _add_run_options(mnist, datasets=IMAGE_DATASETS, default_datasets="mnist")
    mnist.add_argument(
        "--subsample", type=int, default=None, help="train on N stratified images"
    )
    mnist.add_argument(
        "--test-subsample", type=int, default=None, help="test on N stratified images"
    )
    mnist.add_argument("--data-home", default=None, help="MNIST cache directory")
    mnist.add_argument(
        "--n-components", type=int, default=164, help="PCA dimensions (default 164)"
    )
    mnist.add_argument(
        "--pixel-max",
        type=float,
        default=1.0,
        help="value of a white pixel: 1 (default, pixels in [0, 1]) or 255 "
        "(pixels left in 0..255); the learners should not care",
    )

    cv = commands.add_parser(
        "cv",
        help="the ITML paper's protocol: k-NN error, 5 x 2-fold cross-validation",
        description="The evaluation of Davis et al. (ICML 2007, Figure 1): k-NN "
        "test error (k = 4) over stratified 2-fold cross-validation repeated 5 "
        "times; repetition r shuffles the folds and seeds the learners with r; "
        "each training fold fixes the standardisation. Prints mean error, its "
        "standard deviation and mean fit seconds per data set and method; "
        "--json/--csv write one record per fold run.",
    )
    _add_run_options(
        cv,
        datasets=EMBEDDED_DATASETS,
        default_datasets="wine,iris",
        default_methods="euclidean,itml",
        default_k=4,
        seeds=False,
    )
    cv.add_argument(
        "--folds", type=int, default=2, help="folds of the cross-validation (2)"
    )
    cv.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="repetitions; repetition r uses seed r (default 5)",
    )

    pairs = commands.add_parser(
        "pairs",
        help="weakly supervised learners on pairs, triplets and quadruplets",
        description="Every learner that fits tuples, through linmetric's "
        "PairsClassifier, TripletsClassifier or QuadrupletsClassifier, on pairs, "
        "triplets and quadruplets drawn with the seed from the labels of an "
        "embedded data set's training part (standardised, stratified 70/30 "
        "split); scored on tuples drawn the same way from the test part: pair "
        "ROC AUC, pair accuracy at the threshold most accurate on the training "
        "pairs, triplet and quadruplet accuracy, and the k-NN accuracy of the "
        "learned metric. --with-peers fits metric-learn's same learners on the "
        "same tuples.",
    )
    _add_run_options(pairs, datasets=EMBEDDED_DATASETS, task="pairs")
    pairs.add_argument(
        "--n-tuples",
        type=int,
        default=None,
        help="tuples of each kind per part (default 20 * n_classes ** 2, "
        "metric-learn's default number of constraints)",
    )

    regression = commands.add_parser(
        "regression",
        help="MLKR: kNN and kernel regression error before and after",
        description="Learners of regression targets (MLKR) against the Euclidean "
        "metric on standardised features: scikit-learn's diabetes set and "
        "make_friedman1 (1000 points, 10 features, noise 1, random_state 0), "
        "random 70/30 split with the seed; test RMSE and R^2 of k-NN regression "
        "(k = 5 by default) and of Gaussian kernel regression, "
        "exp(-||L(x - x')||^2).",
    )
    _add_run_options(
        regression, datasets=REGRESSION_DATASETS, default_k=5, task="regression"
    )

    kernels = commands.add_parser(
        "kernels",
        help="the numba kernel benchmark",
        description="Times the numba kernels (benchmarks.kernels).",
    )
    kernels.add_argument("--n", type=int, default=20000, help="number of points")
    kernels.add_argument("--d", type=int, default=164, help="number of features")
    kernels.add_argument(
        "--dtypes", default="float32", help="comma-separated dtypes (float32,float64)"
    )
    kernels.add_argument("--quick", action="store_true", help="a short run")
    kernels.add_argument("--json", metavar="PATH", help="write the records")

    commands.add_parser("list", help="data sets, methods and peers, with availability")

    setup = commands.add_parser(
        "peers-setup",
        help="build benchmarks/.peers/venv with metric-learn, pylmnn (and mlpack)",
        description="Create the virtual environment benchmarks/.peers/venv with "
        "metric-learn 0.7.0 (and scikit-learn < 1.8), pylmnn 1.6.4 (with six, GPy, "
        "GPyOpt) and optionally mlpack, and patch pylmnn for SciPy >= 1.11. The "
        "patches are recorded in benchmarks/.peers/patches.json and in every "
        "peer result.",
    )
    setup.add_argument("--mlpack", action="store_true", help="also install mlpack")
    setup.add_argument(
        "--recreate", action="store_true", help="delete and rebuild the venv"
    )
    setup.add_argument(
        "--python", default=None, help="interpreter to build the venv from"
    )
    return parser


def _attach_environment(records):
    from .environment import collect_environment

    environment = collect_environment()
    for record in records:
        record["environment"] = environment
    return records


def _write_outputs(records, args, *, prefix):
    from .report import write_csv, write_json

    if args.json:
        write_json(records, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        write_csv(records, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.plots:
        from .plots import write_plots

        for path in write_plots(records, args.plots, prefix=prefix):
            print(f"wrote {path}", file=sys.stderr)


def _selected_peers(args, methods):
    """The peers of ``methods`` named by ``--peers`` (none without --with-peers).

    Only the peers that fit what the suite's task fits are taken.
    """
    from .peers import DEFAULT_PEERS, PEER_METHOD, PEERS

    if not args.with_peers:
        return []
    if args.peers in (None, "", "default"):
        names = list(DEFAULT_PEERS)
    else:
        names = comma_list(args.peers, option="--peers", choices=list(PEERS))
    return [
        name
        for name in names
        if PEER_METHOD[name] in methods
        and PEERS[name].suite_task == getattr(args, "task", "classification")
    ]


def selected_methods(args):
    """The methods named by ``--methods``: ``default``, ``all`` or a list."""
    if args.methods in (None, "", "default"):
        return method_names(args.task, default_only=True)
    return comma_list(args.methods, option="--methods", choices=method_names(args.task))


def run_grid(suite, draws, datasets, args):
    """Run every data set x draw x (method, peer) of a suite; return records.

    ``draws`` are ``(loader, seed)`` pairs: ``loader(dataset, seed=seed)``
    gives the split, and ``seed`` also seeds the learners.
    """
    from .grid import Task, run_tasks
    from .progress import Progress
    from .runner import add_speed_ratios

    methods = selected_methods(args)
    peers = _selected_peers(args, methods)
    common = {
        "suite": suite,
        "n_neighbors": args.n_neighbors,
        "max_iter": args.max_iter,
        "peer_timeout": args.peer_timeout,
        "cold": args.cold,
        "busy_load": args.busy_load,
    }
    runs = [("linmetric", name) for name in methods]
    runs += [("peer", name) for name in peers]
    tasks = [
        Task(dataset=dataset, seed=seed, loader=loader, kind=kind, name=name, **common)
        for dataset in datasets
        for loader, seed in draws
        for kind, name in runs
    ]
    with Progress(len(tasks), quiet=args.quiet) as progress:
        records = run_tasks(
            tasks,
            progress=progress,
            n_jobs=args.n_jobs,
            backend=args.backend,
            scheduler=args.scheduler,
        )
    return add_speed_ratios(records)


def _seed_draws(loader, args):
    seeds = comma_list(args.seeds, option="--seeds", cast=int) or [0]
    return [(loader, seed) for seed in seeds]


def _finish(records, args, *, prefix, started, table=None):
    from .report import busy_warning, format_table

    _attach_environment(records)
    print((table or format_table)(records))
    _write_outputs(records, args, prefix=prefix)
    warning = busy_warning(records, per_cpu=args.busy_load)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        print(f"total {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def cmd_quick(args):
    from .data import load_embedded

    started = time.perf_counter()
    datasets = comma_list(args.datasets, option="--datasets", choices=EMBEDDED_DATASETS)
    records = run_grid("quick", _seed_draws(load_embedded, args), datasets, args)
    return _finish(records, args, prefix="quick_", started=started)


def cmd_mnist(args):
    from .data import load_mnist_protocol

    started = time.perf_counter()
    datasets = comma_list(args.datasets, option="--datasets", choices=IMAGE_DATASETS)
    load = functools.partial(
        load_mnist_protocol,
        subsample=args.subsample,
        test_subsample=args.test_subsample,
        n_components=args.n_components,
        data_home=args.data_home,
        pixel_max=args.pixel_max,
    )
    records = run_grid("mnist", _seed_draws(load, args), datasets, args)
    return _finish(records, args, prefix="mnist_", started=started)


def cmd_cv(args):
    from .data import load_embedded_fold
    from .report import format_cv_table

    started = time.perf_counter()
    if args.with_peers:
        raise SystemExit(
            "cv: --with-peers is not supported; the cv suite runs linmetric's "
            "methods and the Euclidean baseline only."
        )
    if args.folds < 2:
        raise SystemExit(f"--folds={args.folds} must be at least 2.")
    if args.repeats < 1:
        raise SystemExit(f"--repeats={args.repeats} must be at least 1.")
    datasets = comma_list(args.datasets, option="--datasets", choices=EMBEDDED_DATASETS)
    draws = [
        (functools.partial(load_embedded_fold, fold=fold, n_folds=args.folds), repeat)
        for repeat in range(args.repeats)
        for fold in range(args.folds)
    ]
    records = run_grid("cv", draws, datasets, args)
    return _finish(records, args, prefix="cv_", started=started, table=format_cv_table)


def cmd_pairs(args):
    from .data import load_embedded_tuples

    started = time.perf_counter()
    datasets = comma_list(args.datasets, option="--datasets", choices=EMBEDDED_DATASETS)
    if args.n_tuples is not None and args.n_tuples < 1:
        raise SystemExit(f"--n-tuples={args.n_tuples} must be at least 1.")
    load = functools.partial(load_embedded_tuples, n_tuples=args.n_tuples)
    records = run_grid("pairs", _seed_draws(load, args), datasets, args)
    return _finish(records, args, prefix="pairs_", started=started)


def cmd_regression(args):
    from .data import load_regression

    started = time.perf_counter()
    datasets = comma_list(
        args.datasets, option="--datasets", choices=REGRESSION_DATASETS
    )
    records = run_grid("regression", _seed_draws(load_regression, args), datasets, args)
    return _finish(records, args, prefix="regression_", started=started)


def cmd_kernels(args):
    try:
        from . import kernels
    except ImportError as exc:
        raise SystemExit(f"the kernel benchmark is not available: {exc}") from exc
    dtypes = tuple(comma_list(args.dtypes, option="--dtypes") or ["float32"])
    records = kernels.run(n=args.n, d=args.d, dtypes=dtypes, quick=args.quick)
    print(kernels.format_table(records))
    if args.json:
        from .report import write_json

        _attach_environment(records)
        write_json(records, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_list(args):
    from .methods import METHODS, availability
    from .peers import DEFAULT_PEERS, PEER_METHOD, PEERS, PEERS_VENV, peers_python

    print("suites: quick (default), mnist, cv, pairs, regression, kernels")
    print(f"embedded data sets: {', '.join(EMBEDDED_DATASETS)}")
    print(f"regression data sets: {', '.join(REGRESSION_DATASETS)}")
    print(
        "image data sets (mnist suite): mnist (linmetric.datasets.load_mnist), "
        "fashion-mnist (load_fashion_mnist)"
    )
    print("methods (suites; * = run by default in quick, mnist and cv):")
    for name, method in METHODS.items():
        available, note = availability(name)
        state = "available" if available else f"unavailable ({note})"
        suites = [method.task] if method.class_name else ["every suite"]
        if method.tuples:
            suites.append(f"pairs ({method.tuples})")
        star = "*" if method.default and method.task == "classification" else " "
        print(f" {star}{name:<11} {method.description} [{', '.join(suites)}]: {state}")
    ready = peers_python() is not None
    print(
        f"peers (--with-peers; environment {PEERS_VENV}: "
        f"{'present' if ready else 'missing, run peers-setup'}):"
    )
    for peer in PEERS.values():
        where = "this Python" if peer.environment == "main" else "peers venv"
        default = "" if peer.name in DEFAULT_PEERS else ", only with --peers"
        method = PEER_METHOD[peer.name]
        print(
            f"  {peer.name:<30} {peer.library} {method}, {peer.task} ({where}{default})"
        )
    return 0


def cmd_peers_setup(args):
    from .peers.setup_env import setup_peers

    def log(message):
        print(message, file=sys.stderr)

    patches = setup_peers(
        python=args.python, with_mlpack=args.mlpack, recreate=args.recreate, log=log
    )
    for patch in patches:
        print(
            f"patched {patch['file']} ({patch['package']} {patch['version']}): "
            f"{patch['reason']}"
        )
    return 0


COMMANDS = {
    "quick": cmd_quick,
    "mnist": cmd_mnist,
    "cv": cmd_cv,
    "pairs": cmd_pairs,
    "regression": cmd_regression,
    "kernels": cmd_kernels,
    "list": cmd_list,
    "peers-setup": cmd_peers_setup,
}


def main(argv=None):
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["quick", *argv]
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)
