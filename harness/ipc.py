"""The worker wire format: a small header plus raw array bytes, every transfer bounded by a deadline.

Note [Worker transport]
-----------------------
``multiprocessing.Connection.send`` pickles the whole message into one bytes
object and then blocks in ``write()`` until the peer has read all of it: a
stopped worker hangs the parent forever (no deadline applies), and the
pickled copy doubles the parent's memory for every request in flight.

Here a message is a header and the raw bytes of its arrays::

    <8-byte little-endian header length> <header> <array 0 bytes> <array 1 bytes> ...

The header is ``pickle((meta, [(name, dtype, shape), ...]))`` where ``meta``
holds plain values only (the ``Call`` or ``Outcome`` with its arrays taken
out): arrays never go through pickle (DESIGN.md §8), they are written
straight from their own buffers and read straight into ``np.empty`` arrays, so
neither side makes a second copy. The two sides may run different NumPys (a
worker in its own environment, Note [Environments]), so the header must not
name NumPy at all: a NumPy scalar that slips into ``meta`` is pickled as the
Python number it holds, and an array there is refused.

The parent's end of the pipe is non-blocking: ``send`` and ``recv`` wait for
the socket in slices of ``POLL_S`` until a deadline, calling ``tick`` between
slices (the worker checks for cancellation and its memory budget there), and
raise ``DeadlineExceeded`` when time runs out. The worker's end blocks: it has
nothing else to do.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import struct
import time
from typing import Any, Callable, Optional

import numpy as np

POLL_S = 0.05
_LENGTH = struct.Struct("<Q")
_MAX_HEADER = 64 << 20     # a header holds parameters and text, never data
_PORTABLE_KINDS = "biufc"   # dtypes every NumPy reads back from ``dtype.str``


class DeadlineExceeded(Exception):
    """The peer did not take or give a message in time."""


def _portable(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in _PORTABLE_KINDS:   # e.g. ml_dtypes.bfloat16: widen exactly
        array = array.astype(np.float32 if array.dtype.itemsize <= 4 else np.float64)
    return np.ascontiguousarray(array)


def _bytes_of(array: np.ndarray) -> memoryview:
    return memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")


def _wait(fd: int, events: int, deadline: Optional[float], tick: Optional[Callable[[], None]]) -> None:
    """Block until ``fd`` is ready for ``events`` (or hung up); raise ``DeadlineExceeded`` at the deadline."""
    poller = select.poll()
    poller.register(fd, events)
    while True:
        slice_s = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
        if slice_s <= 0:
            raise DeadlineExceeded
        if poller.poll(slice_s * 1000):
            return
        if tick is not None:
            tick()


class _PlainPickler(pickle.Pickler):
    """Pickles NumPy scalars as Python numbers and refuses arrays: a header any NumPy can read."""

    def reducer_override(self, obj):
        if isinstance(obj, np.generic):
            value = obj.item()
            return type(value), (value,)
        if isinstance(obj, np.ndarray):
            raise TypeError("an array in a message header: arrays travel as frames (Note [Worker transport])")
        return NotImplemented


def _header(meta: Any, specs: list) -> bytes:
    buffer = io.BytesIO()
    _PlainPickler(buffer, protocol=4).dump((meta, specs))
    return buffer.getvalue()


def send(fd: int, meta: Any, arrays: Optional[dict[str, np.ndarray]] = None,
         deadline: Optional[float] = None, tick: Optional[Callable[[], None]] = None) -> None:
    """Write one message; on a non-blocking ``fd`` give up at ``deadline`` (monotonic seconds)."""
    arrays = {name: _portable(a) for name, a in (arrays or {}).items()}
    header = _header(meta, [(name, a.dtype.str, a.shape) for name, a in arrays.items()])
    for chunk in [_LENGTH.pack(len(header)) + header, *map(_bytes_of, arrays.values())]:
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                _wait(fd, select.POLLOUT, deadline, tick)


def _read_into(fd: int, view: memoryview, deadline, tick) -> None:
    while view:
        try:
            n = os.readv(fd, [view])
        except BlockingIOError:
            _wait(fd, select.POLLIN, deadline, tick)
            continue
        if n == 0:
            raise EOFError("the worker closed the pipe")
        view = view[n:]


def recv(fd: int, deadline: Optional[float] = None,
         tick: Optional[Callable[[], None]] = None) -> tuple[Any, dict[str, np.ndarray]]:
    """Read one message: ``(meta, arrays)``."""
    length = bytearray(_LENGTH.size)
    _read_into(fd, memoryview(length), deadline, tick)
    (size,) = _LENGTH.unpack(length)
    if size > _MAX_HEADER:
        raise OSError(f"corrupt message: a {size}-byte header")
    header = bytearray(size)
    _read_into(fd, memoryview(header), deadline, tick)
    meta, specs = pickle.loads(header)
    arrays = {}
    for name, dtype, shape in specs:
        array = np.empty(shape, np.dtype(dtype))
        _read_into(fd, _bytes_of(array), deadline, tick)
        arrays[name] = array
    return meta, arrays
