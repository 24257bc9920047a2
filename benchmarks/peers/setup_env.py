"""Build the peers' virtual environment and patch what needs patching.

``python -m benchmarks peers-setup`` calls :func:`setup_peers`: it creates
``benchmarks/.peers/venv`` with the Python running the suite, installs
metric-learn 0.7.0 with a scikit-learn older than 1.8 (0.7.0 imports private
scikit-learn names that 1.8 removed), pylmnn 1.6.4 with the packages it
imports (six, GPy, GPyOpt), and optionally mlpack, then applies the patches in
:data:`PATCHES` and writes them to ``benchmarks/.peers/patches.json``, from
where every peer result copies the ones of its library.
"""

import difflib
import json
import subprocess
import sys
import venv
from pathlib import Path

from . import PATCHES_FILE, PEERS_VENV, python_output

REQUIREMENTS = (
    "metric-learn==0.7.0",
    "scikit-learn<1.8",
    "pylmnn==1.6.4",
    "six",
    "GPy",
    "GPyOpt",
    "matplotlib",
    "threadpoolctl",
)
OPTIONAL_REQUIREMENTS = ("mlpack",)

# (package, file inside the package, text to find, replacement, reason)
PATCHES = (
    (
        "pylmnn",
        "lmnn.py",
        "'x0': transformation,",
        "'x0': transformation.ravel(),",
        "SciPy >= 1.11 requires a 1-D x0 in scipy.optimize.minimize; pylmnn 1.6.4 "
        "passes the 2-D initial transformation.",
    ),
)


def _run(command, log):
    log(" ".join(str(part) for part in command))
    subprocess.run([str(part) for part in command], check=True)


def _package_dir(python, package):
    code = (
        "import importlib.util as u; "
        f"print(u.find_spec({package!r}).submodule_search_locations[0])"
    )
    return Path(python_output(python, code, check=True))


def _version(python, package):
    code = f"from importlib import metadata; print(metadata.version({package!r}))"
    return python_output(python, code) or None


def apply_patches(python, log=print):
    """Apply :data:`PATCHES` in the environment of ``python``; return records.

    Applying is idempotent: a file that already carries the replacement is
    recorded as patched and left alone. A file that has neither text makes the
    setup fail, since the peer would then run unpatched.
    """
    applied = []
    for package, relative, old, new, reason in PATCHES:
        path = _package_dir(python, package) / relative
        text = path.read_text()
        if new in text:
            original = text.replace(new, old)
        elif old in text:
            original = text
            path.write_text(text.replace(old, new))
            log(f"patched {path}")
        else:
            raise RuntimeError(
                f"cannot patch {path}: neither {old!r} nor {new!r} is in it; the "
                f"installed {package} is not the expected version."
            )
        diff = "".join(
            difflib.unified_diff(
                original.splitlines(keepends=True),
                original.replace(old, new).splitlines(keepends=True),
                fromfile=f"a/{package}/{relative}",
                tofile=f"b/{package}/{relative}",
                n=1,
            )
        )
        applied.append(
            {
                "package": package,
                "version": _version(python, package),
                "file": f"{package}/{relative}",
                "reason": reason,
                "diff": diff,
            }
        )
    return applied


def setup_peers(*, python=None, with_mlpack=False, recreate=False, log=print):
    """Create (or update) the peers' venv, install the peers, patch them.

    Parameters
    ----------
    python : str, default=None
        Interpreter to build the venv from; by default the one running.
    with_mlpack : bool, default=False
        Also install mlpack's Python bindings.
    recreate : bool, default=False
        Delete and rebuild an existing venv.
    log : callable, default=print
        Where progress messages go.

    Returns
    -------
    patches : list of dict
        The patches applied, as written to ``patches.json``.
    """
    venv_python = PEERS_VENV / "bin" / "python"
    if recreate or not venv_python.exists():
        log(f"creating {PEERS_VENV}")
        if python is None:
            venv.EnvBuilder(with_pip=True, clear=recreate).create(PEERS_VENV)
        else:
            _run([python, "-m", "venv", "--clear", PEERS_VENV], log)
    _run([venv_python, "-m", "pip", "install", "--upgrade", "pip"], log)
    requirements = list(REQUIREMENTS)
    if with_mlpack:
        requirements += OPTIONAL_REQUIREMENTS
    _run([venv_python, "-m", "pip", "install", *requirements], log)
    patches = apply_patches(venv_python, log)
    PATCHES_FILE.parent.mkdir(parents=True, exist_ok=True)
    PATCHES_FILE.write_text(json.dumps(patches, indent=1) + "\n")
    log(f"recorded {len(patches)} patch(es) in {PATCHES_FILE}")
    return patches


if __name__ == "__main__":
    setup_peers(with_mlpack="--mlpack" in sys.argv[1:])
