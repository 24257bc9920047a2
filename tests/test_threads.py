"""The BLAS limit of limit_threads behaves as threadpoolctl's own limit.

linmetric sets and restores the BLAS libraries' thread counts itself
(threadpoolctl reports every library's version and settings on each entry,
half the cost of a small limit); every observable effect must be the same:
the counts inside and after each block, with nesting, exceptions, an
enclosing threadpoolctl limit and other threads, and which thread holds
OpenBLAS's process-wide pool.
"""

import contextlib
import threading

import numpy as np  # noqa: F401  (loads the BLAS before it is looked up)
import pytest
import scipy.linalg  # noqa: F401
import threadpoolctl

from linmetric import _threads


def _libraries():
    return _threads._blas_controller().lib_controllers


def _state():
    """The thread counts of the BLAS libraries and who holds OpenBLAS's pool."""
    holder = threadpoolctl.OpenBLASController._SHARED_STATE.controlling_thread
    if holder is None or not holder.is_alive():
        holder = None
    elif holder is threading.current_thread():
        holder = "this thread"
    else:
        holder = "another thread"
    return [library.num_threads for library in _libraries()], holder


def _ours(n_threads):
    return _threads._blas_controller().limit(limits=n_threads, user_api="blas")


def _threadpoolctls(n_threads):
    return _threads._blas_controller().controller.limit(
        limits=n_threads, user_api="blas"
    )


def _in_another_thread(limit, n_threads):
    seen = []

    def run():
        seen.append(_state())
        with limit(n_threads):
            seen.append(_state())
        seen.append(_state())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen


def _scenario(limit):
    seen = [_state()]
    with limit(1):
        seen.append(_state())
        with limit(3):
            seen.append(_state())
            seen.append(_in_another_thread(limit, 2))
        seen.append(_state())
        with pytest.raises(RuntimeError):
            with limit(2):
                seen.append(_state())
                raise RuntimeError
        seen.append(_state())
    seen.append(_state())
    seen.append(_in_another_thread(limit, 2))
    # inside a limit of threadpoolctl's own, which keeps holding the pool
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        seen.append(_state())
        with limit(1):
            seen.append(_state())
        seen.append(_state())
    seen.append(_state())
    return seen


def test_blas_limit_is_threadpoolctls():
    if not _libraries():
        pytest.skip("no BLAS library found")
    expected = _scenario(_threadpoolctls)
    assert _scenario(_ours) == expected
    assert expected[1][0] == [1] * len(_libraries())


def test_limit_threads_sets_and_restores_blas_threads():
    if not _libraries():
        pytest.skip("no BLAS library found")
    outside = _state()
    with _threads.limit_threads(blas=1):
        assert _state()[0] == [1] * len(_libraries())
        with _threads.limit_threads(blas=1, kernels=1):
            assert _state()[0] == [1] * len(_libraries())
    assert _state() == outside


def test_falls_back_to_threadpoolctl_without_its_count_of_limits(monkeypatch):
    libraries = _threads._BlasLibraries(_threads._blas_controller().controller)
    assert libraries._ownership is not None
    monkeypatch.delattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP")
    libraries = _threads._BlasLibraries(libraries.controller)
    assert libraries._ownership is None
    calls = []
    monkeypatch.setattr(
        libraries.controller,
        "limit",
        lambda **kwargs: calls.append(kwargs) or contextlib.nullcontext(),
    )
    with libraries.limit(limits=1, user_api="blas"):
        pass
    assert calls == [{"limits": 1, "user_api": "blas"}]
