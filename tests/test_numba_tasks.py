"""``harness.kernels.tasks``: the chunks of a parallel loop are claimed one at a time, each exactly once,
whichever thread gets there first; and how many chunks a call's work is cut into."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from harness.kernels.tasks import CHUNKS_PER_THREAD, chunk_count, claim  # noqa: E402


@numba.njit(parallel=True)
def _claim_all(n, nthreads, owner, spins, counter):
    for th in numba.prange(nthreads):
        c = claim(counter)
        while c < n:
            owner[c] += th + 1                          # += : a chunk handed out twice would show
            s = 0.0
            for k in range(spins):                      # a little work, so the threads interleave
                s += k * 0.5
            if s < 0:
                owner[c] = -1
            c = claim(counter)


@pytest.mark.parametrize("n, spins", [(1, 0), (7, 10), (1000, 0), (5000, 200)])
def test_every_chunk_is_claimed_exactly_once(n, spins):
    nthreads = max(2, numba.get_num_threads())
    owner, counter = np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.int64)
    _claim_all(n, nthreads, owner, spins, counter)
    assert np.all((owner >= 1) & (owner <= nthreads)), "a chunk left out or taken twice"
    assert counter[0] == n + nthreads                   # each thread's last claim finds none left


def test_claim_returns_the_count_before_the_increment():
    @numba.njit
    def twice(counter):
        return claim(counter), claim(counter)
    counter = np.array([5], dtype=np.int64)
    assert twice(counter) == (5, 6) and counter[0] == 7


@pytest.mark.parametrize("total, threads, expected", [
    (256, 2, 2 * CHUNKS_PER_THREAD),   # plenty of rows: a few chunks per thread
    (3, 2, 3),                         # fewer units than that: one each
    (0, 2, 1),                         # nothing to split: one (empty) chunk
    (100, 1, CHUNKS_PER_THREAD),
])
def test_chunk_count(total, threads, expected):
    assert chunk_count(total, threads) == expected


@numba.njit(parallel=True)
def _claim_with_own_counter(n, nthreads, owner):
    counter = np.zeros(1, dtype=np.int64)               # as the kernels do: allocated before the loop, shared
    for th in numba.prange(nthreads):
        c = claim(counter)
        while c < n:
            owner[c] += th + 1
            c = claim(counter)


def test_a_counter_allocated_in_the_parallel_function_is_shared():
    owner = np.zeros(2000, dtype=np.int64)
    _claim_with_own_counter(2000, max(2, numba.get_num_threads()), owner)
    assert np.all((owner >= 1) & (owner <= max(2, numba.get_num_threads())))   # a private counter: every thread all
