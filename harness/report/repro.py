"""Reproducers: ``repro/<case>/<backend>/`` for each result that fails the gate.

A gradient result (``record["gradient"]`` is ``"x"``, ``"w"`` or ``"b"``) gets
its own folder inside its forward result's, ``repro/<case>/<backend>/grad_x/``
(the forward folder holds only files, so the two never collide); its
``y_ref`` is the oracle's gradient, ``inputs.npz`` also holds the cotangent
``dy``, and the script runs the backward program the adapter ran.

This module owns the ``ReproWriter`` hook (``RunOptions.on_failure``), the
folder names (``safe_name``, ``repro_dir``), writing ``inputs.npz`` and the
``diff.png`` heatmap. The ``repro.py`` text itself is generated in
``repro_scripts.py``.

Each folder holds

* ``inputs.npz``: the canonical operands (named and laid out as the
  operator's ``operands`` say), all float64 and exactly representable in the
  case dtype; the oracle's output ``y_ref`` and its magnitude ``B``
  (``OpSpec.magnitude``, in the case layout); and ``bound``,
  the per-element bound on ``|y − y_ref|`` that the comparator used for this
  backend (``harness.compare.bound``: stored as computed, so the script judges
  with exactly conform's bound whatever the tolerance model's formula);
* ``repro.py``: a standalone script that makes the adapter's native call and
  judges it against ``y_ref`` under ``bound`` (see ``repro_scripts.py``);
* ``diff.png``: a heatmap of ``|y − y_ref|`` over the output plane (max over
  batch and channels), when the backend returned an output of the right shape;
  for a gradient, over the operand's plane (``gradient_axes``: ∂x over its
  spatial plane, ∂w over its kernel window; none for the 1-D ∂b).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from harness import ops
from harness.compare import bound, tolerance_for
from harness.report import atomic_write
from harness.report.gradients import folder_name, gradient_of
from harness.report.repro_scripts import render_script

# ---------------------------------------------------------------- file names

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=,+-]+")
_HASHED = re.compile(r"-[0-9a-f]{8}$")


def safe_name(text: str, limit: int = 80) -> str:
    """A file name for a case or backend id: no separators, no leading dot, bounded length.

    Anything outside ``[A-Za-z0-9_.=,+-]`` becomes ``_``; when the name had to
    change (or was cut), a short hash of the original keeps distinct ids apart.
    A name that already ends like a hashed one (``ca_b-6eaf1ea9``) gets a hash
    too, so an id can never take the folder of another id's hashed name: a
    name kept as it is never ends in ``-<8 hex>``, and every hashed name does.
    """
    name = _UNSAFE.sub("_", text).strip("._-") or "x"
    if name != text or len(name) > limit or _HASHED.search(name):
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = f"{name[:limit]}-{digest}"
    return name


def repro_dir(out: Path, case_id: str, backend: str, gradient: Optional[str] = None) -> Path:
    """``out/repro/<case>/<backend>`` (a gradient result: ``.../<backend>/grad_<operand>``), guaranteed to
    lie inside ``out/repro``."""
    root = (Path(out) / "repro").resolve()
    folder = (root / safe_name(case_id) / safe_name(backend)).resolve()
    if gradient is not None:
        folder = (folder / safe_name(folder_name(gradient))).resolve()
    if root not in folder.parents:
        raise ValueError(f"reproducer path for {case_id!r}/{backend!r} escapes {root}")
    return folder


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- heatmap

#: A perceptually ordered dark-to-bright ramp (inferno-like anchors).
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                  [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)
HEATMAP_MAX_CELLS = 96     # the plane is max-pooled to at most this many cells per side
HEATMAP_MIN_PIXELS = 192   # and scaled up (nearest) to at least this many pixels on its long side


def diff_plane(actual: np.ndarray, reference: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``|actual − reference|`` reduced to the output plane (max over ``axes``: the operator's batch and
    channel axes, ``ReportSpec.plane_axes``).

    A non-finite mismatch (NaN/Inf where the oracle has a number, or the
    reverse) counts as the plane's largest difference.
    """
    y = np.asarray(actual, np.float64)
    r = np.asarray(reference, np.float64)
    fy, fr = np.isfinite(y), np.isfinite(r)
    bad = (fy != fr) | (~fr & ~((np.isnan(y) & np.isnan(r)) | (y == r)))
    diff = np.where(fy & fr, np.abs(y - r), 0.0)
    top = diff.max() if diff.size else 0.0
    diff = np.where(bad, top if top > 0 else 1.0, diff)
    return diff.max(axis=axes)


def _pool(plane: np.ndarray, cells: int) -> np.ndarray:
    h, w = plane.shape
    fh, fw = -(-h // cells), -(-w // cells)
    if fh == 1 and fw == 1:
        return plane
    padded = np.zeros((-(-h // fh) * fh, -(-w // fw) * fw))
    padded[:h, :w] = plane
    return padded.reshape(padded.shape[0] // fh, fh, padded.shape[1] // fw, fw).max(axis=(1, 3))


def png(rgb: np.ndarray) -> bytes:
    """Encode an ``(h, w, 3)`` uint8 image as PNG (no dependency beyond zlib)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rgb, dtype=np.uint8))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def heatmap_png(plane: np.ndarray) -> bytes:
    """The plane as a PNG: black is no difference, bright yellow is the largest (linear scale)."""
    plane = _pool(np.asarray(plane, np.float64), HEATMAP_MAX_CELLS)
    top = plane.max() if plane.size else 0.0
    t = plane / top if top > 0 else np.zeros_like(plane)
    pos = t * (len(_RAMP) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    scale = max(1, -(-HEATMAP_MIN_PIXELS // max(plane.shape)))
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return png(np.round(rgb).astype(np.uint8))


def gradient_axes(gradient: str, ndim: int) -> Optional[tuple[int, ...]]:
    """Axes reduced for a gradient's heatmap, or None for no heatmap.

    Gradients are in canonical layouts whatever the case's layout: ∂x is NCHW (reduce N and C: its
    spatial plane), ∂w a 4-D weight (reduce its two channel axes: the kernel window); a 1-D ∂b or any
    operand without two trailing plane axes has no plane to show.
    """
    return tuple(range(ndim - 2)) if ndim >= 3 else None


# ---------------------------------------------------------------- the hook

def _tolerance(case, call, reference, backend: str) -> dict:
    """The tolerance the comparator would use for this backend (results without metrics carry none)."""
    from harness.backends import backend_class
    override = case.common.tolerance.model_dump() if case.common.tolerance else None
    try:
        accumulation = backend_class(backend).accumulation_for(call.dtype)
    except Exception:  # noqa: BLE001 - an unknown backend: the conservative default
        accumulation = None
    return tolerance_for(call.dtype, reference.accumulation_length, override, accumulation, reference.roundings)


def _describe(backend: str, call):
    """The program the backend would run for ``call`` (no answer came back: a crash or a timeout)."""
    from harness.backends import backend_class
    try:
        return backend_class(backend).describe(call)
    except Exception:  # noqa: BLE001 - an unknown or broken backend: no reproducer, not a lost run
        return None


class ReproWriter:
    """``RunOptions.on_failure``: writes the reproducer of one failing result and links it in the record.

    Adds ``record["repro"]`` (path of ``repro.py`` relative to the report
    folder) and, when a same-shape output exists, ``record["heatmap"]``. A
    reproducer that cannot be written costs that reproducer only: the reason
    goes into ``record["repro_error"]`` and the run goes on.
    """

    def __init__(self, out: Path):
        self.out = Path(out)

    def __call__(self, case, call, reference, record, outcome) -> None:
        try:
            self.write(case, call, reference, record, outcome)
        except Exception as exc:  # noqa: BLE001 - never lose a run to a reproducer
            record["repro_error"] = f"{type(exc).__name__}: {exc}"

    def write(self, case, call, reference, record, outcome) -> Path:
        gradient = gradient_of(record)
        folder = repro_dir(self.out, record["case"], record["backend"], gradient)
        folder.mkdir(parents=True, exist_ok=True)
        tolerance = record.get("tolerance") or _tolerance(case, call, reference, record["backend"])
        arrays = {name: np.asarray(value, np.float64) for name, value in call.arrays.items()}
        if reference.output is not None:
            arrays["y_ref"] = np.asarray(reference.output, np.float64)
            arrays["B"] = np.asarray(reference.magnitude, np.float64)
            arrays["bound"] = np.asarray(bound(tolerance, reference), np.float64)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        _atomic_bytes(folder / "inputs.npz", buffer.getvalue())
        program = getattr(outcome, "program", None)
        if program is None and gradient is None:   # only the forward program can be rebuilt in the parent
            program = _describe(record["backend"], call)
        script = render_script(record, program, tolerance, call.expects_error)
        atomic_write(folder / "repro.py", script)
        (folder / "repro.py").chmod(0o755)
        record["repro"] = (folder / "repro.py").relative_to(self.out.resolve()).as_posix()
        if (outcome is not None and outcome.output is not None and reference.output is not None
                and tuple(np.shape(outcome.output)) == tuple(np.shape(reference.output))):
            axes = (ops.get(call.op).report.plane_axes(call.params) if gradient is None
                    else gradient_axes(gradient, np.ndim(reference.output)))
            if axes is not None:
                plane = diff_plane(outcome.output, reference.output, axes)
                _atomic_bytes(folder / "diff.png", heatmap_png(plane))
                record["heatmap"] = (folder / "diff.png").relative_to(self.out.resolve()).as_posix()
        return folder
