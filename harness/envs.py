"""The Python environments backends' workers run in (DESIGN.md §8, ``ID@VERSION``).

Note [Environments]
-------------------
A framework's pins can disagree with another's (MindSpore 2.10's compiled
kernels need NumPy < 2; the newest JAX needs a newer ``ml_dtypes`` than
TensorFlow allows), and a framework team compares two releases of one
framework in one run. So a backend names an ``Environment`` (the framework's
pinned requirements); its worker runs under that environment's interpreter.

* ``shared=True``: the default version runs in conform's own interpreter (the
  pins agree with conform's ``constraints.txt``); only ``ID@VERSION`` builds an
  environment for it.
* otherwise every run uses a cached environment, built once with ``uv`` under
  ``.conform/envs/`` and reused while its requirements are unchanged.

An environment holds the framework and the worker's own few dependencies
(``WORKER_REQUIREMENTS``); conform's ``harness`` package is linked in, never
copied, so a worker always runs the parent's code. Arrays cross between the
two interpreters as raw bytes (Note [Worker transport] in ``harness/ipc.py``),
so the two sides need not share a NumPy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness import cpu

STAMP = "conform-env.json"
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Environment:
    """A framework's pinned requirements, and which of its distributions ``@VERSION`` moves."""

    name: str
    requirements: tuple[str, ...]        # exact pins (``name==version``), beyond WORKER_REQUIREMENTS
    versioned: tuple[str, ...]           # distributions ``ID@VERSION`` sets to VERSION (the first names it)
    shared: bool = False                 # the default version runs in conform's own interpreter
    #: Every distribution of the default version's environment, pinned (``uv pip freeze`` of a build from
    #: ``requirements``): what is installed when no ``@VERSION`` is asked, so a build is reproducible.
    locked: tuple[str, ...] = ()

    @property
    def distribution(self) -> str:
        return self.versioned[0]


#: What the worker itself imports besides the framework: ``harness.backends`` and the operators' semantics.
WORKER_REQUIREMENTS: tuple[str, ...] = ("pydantic==2.14.4",)

ENVIRONMENTS: dict[str, Environment] = {
    "tensorflow": Environment("tensorflow", ("tensorflow-cpu==2.21.0",), ("tensorflow-cpu",), shared=True),
    # Keras 3 on TensorFlow: tf.keras@VERSION moves Keras; TensorFlow stays at its pin.
    "keras": Environment("keras", ("keras==3.15.1", "tensorflow-cpu==2.21.0"), ("keras",), shared=True),
    "torch": Environment("torch", ("torch==2.13.0",), ("torch",), shared=True),
    # MindSpore 2.10's extension modules were compiled against NumPy 1.x: Tensor.__mul__ raises under NumPy 2.
    "mindspore": Environment("mindspore", ("mindspore==2.10.0", "numpy==1.26.4"), ("mindspore",), locked=(
        "annotated-types==0.8.0", "asttokens==3.0.2", "astunparse==1.6.3", "dill==0.4.1", "mindspore==2.10.0",
        "numpy==1.26.4", "packaging==26.4", "pillow==13.0.0", "protobuf==7.36.2", "psutil==7.2.2",
        "pydantic==2.14.4", "pydantic-core==2.50.5", "safetensors==0.8.0", "scipy==1.17.1", "six==1.17.0",
        "typing-extensions==4.16.0", "typing-inspection==0.4.5", "wheel==0.48.0")),
    "jax": Environment("jax", ("jax==0.10.2", "jaxlib==0.10.2"), ("jax", "jaxlib"), locked=(
        "annotated-types==0.8.0", "jax==0.10.2", "jaxlib==0.10.2", "ml-dtypes==0.7.0", "numpy==2.4.6",
        "opt-einsum==3.4.0", "pydantic==2.14.4", "pydantic-core==2.50.5", "scipy==1.17.1",
        "typing-extensions==4.16.0", "typing-inspection==0.4.5")),
    "onnxruntime": Environment("onnxruntime", ("onnxruntime==1.32.0", "onnx==1.23.2"), ("onnxruntime",), locked=(
        "annotated-types==0.8.0", "flatbuffers==25.12.19", "ml-dtypes==0.7.0", "numpy==2.4.6", "onnx==1.23.2",
        "onnxruntime==1.32.0", "packaging==26.4", "protobuf==7.36.2", "pydantic==2.14.4", "pydantic-core==2.50.5",
        "typing-extensions==4.16.0", "typing-inspection==0.4.5")),
}


class BuildError(Exception):
    """An environment could not be built (the reason quotes the installer)."""


@dataclass(frozen=True)
class Launch:
    """How to start a backend's worker: the interpreter, and the variables that differ from ours."""

    python: str
    variables: dict[str, str]
    label: str                           # "shared" or the environment's folder, for `conform backends`


def home() -> Path:
    """Where built environments are cached: ``$CONFORM_HOME/envs``, by default ``./.conform/envs``."""
    return Path(os.environ.get("CONFORM_HOME") or ".conform").absolute() / "envs"


def compile_cache(framework: str) -> Path:
    """Where a framework's compiled programs are cached across runs: ``$CONFORM_HOME/cache/<framework>/<host>``.

    ``host`` names this machine's processor (architecture, model, instruction-set flags): machine code is
    compiled for the processor it runs on, and a cache folder restored on another kind of runner (a CI
    cache) must not hand it code compiled elsewhere."""
    return Path(os.environ.get("CONFORM_HOME") or ".conform").absolute() / "cache" / framework / _host()


#: What a framework's compile cache may hold before ``prune_cache`` removes its least recently used entries.
#: JAX writes ~5.6 KB per program (the default suite: 5,300 programs, 29 MB), so this keeps ~350,000.
COMPILE_CACHE_MAX_BYTES = 2 << 30


def prune_cache(folder: Path, max_bytes: int = COMPILE_CACHE_MAX_BYTES, keep: float = 0.75) -> int:
    """Keep a compile cache within ``max_bytes``: past it, delete its least recently used entries (the files
    directly in ``folder``, oldest access time first) until ``keep`` of the budget is left; the bytes freed.

    Every new shape a run or a hunt meets adds programs, and nothing else ever removes them: a nightly
    campaign's cache grew without bound. JAX's own limit (``jax_compilation_cache_max_size``) rescans the
    whole folder and reads an access-time file per entry on every write: a cold default suite (5,300
    writes) would read ~14 million files. Here the folder is scanned once per worker start, and pruning
    leaves a quarter of the budget free, so it is rare. Access times are the file system's (``relatime``
    updates them at least daily); an entry another worker is reading while it goes is compiled again."""
    try:
        entries = [(e.stat().st_atime, e.stat().st_size, e.path) for e in os.scandir(folder)
                   if e.is_file(follow_symlinks=False)]
    except OSError:
        return 0
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0
    freed = 0
    for _, size, path in sorted(entries):
        if total - freed <= keep * max_bytes:
            break
        try:
            os.unlink(path)
            freed += size
        except OSError:     # gone already (another worker pruned it), or not ours to remove
            pass
    return freed


def _host() -> str:
    described = [platform.machine()]
    info = cpu.fields()
    described += [f"{key}\t: {info[key]}" for key in ("model name", "flags", "Features", "CPU part") if key in info]
    if not info:
        described.append(platform.processor())
    return f"{platform.machine()}-{hashlib.sha256(chr(10).join(described).encode()).hexdigest()[:12]}"


def uv_binary() -> Optional[str]:
    """The ``uv`` executable (the pinned ``uv`` package's, else one on PATH)."""
    try:
        from uv import find_uv_bin
        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


@dataclass(frozen=True)
class Target:
    """One environment to build: a declaration at one version."""

    environment: Environment
    version: Optional[str]               # None: the declared pins

    @property
    def requirements(self) -> tuple[str, ...]:
        if self.version is None and self.environment.locked:
            return self.environment.locked
        pins = []
        for requirement in self.environment.requirements:
            name = re.split(r"[=<>!~ ;\[]", requirement, maxsplit=1)[0]
            pins.append(f"{name}=={self.version}" if self.version and name in self.environment.versioned
                        else requirement)
        pins += [f"{d}=={self.version}" for d in self.environment.versioned
                 if self.version and not any(p.startswith(f"{d}==") for p in pins)]
        return (*pins, *WORKER_REQUIREMENTS)

    @property
    def shared(self) -> bool:
        """Runs in conform's own interpreter: a shared declaration at its own pins."""
        return self.environment.shared and self.version is None

    @property
    def pinned_version(self) -> Optional[str]:
        """The framework version this target holds, read from its pins."""
        prefix = f"{self.environment.distribution}=="
        return next((r[len(prefix):] for r in self.requirements if r.startswith(prefix)), None)

    @property
    def folder(self) -> Path:
        key = json.dumps([self.requirements, platform.python_version()]).encode()
        tag = f"{self.environment.name}-{self.version or self.pinned_version}-{hashlib.sha256(key).hexdigest()[:10]}"
        return home() / tag


def target_of(backend_id: str) -> Optional[Target]:
    """The environment a backend id runs in; None for a backend that declares none (conform's own kernels)."""
    from harness.backends import backend_class, split_version
    declared = backend_class(backend_id).environment
    if declared is None:
        return None
    return Target(ENVIRONMENTS[declared], split_version(backend_id)[1])


def built(target: Target) -> Optional[dict]:
    """The stamp of a finished build of ``target``, or None if it has not been built."""
    try:
        return json.loads((target.folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def ensure(target: Target, say=lambda text: None) -> Path:
    """The interpreter of ``target``'s environment, building it first if needed (once, under a lock).

    A build goes into a scratch folder renamed into place when complete, so a
    folder under ``home()`` is always a finished environment; an interrupted
    build leaves only scratch, removed by the next attempt.
    """
    python = target.folder / "bin" / "python"
    if built(target) is not None:
        return python
    uv = uv_binary()
    if uv is None:
        raise BuildError("uv is not installed: it builds the environments of non-shared backends")
    home().mkdir(parents=True, exist_ok=True)
    with open(home() / f".{target.folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # another run may be building the same environment
        if built(target) is not None:
            return python
        scratch = target.folder.with_name(target.folder.name + ".building")
        shutil.rmtree(scratch, ignore_errors=True)
        say(f"building environment {target.folder.name}: {' '.join(target.requirements)}")
        try:
            _uv(uv, "venv", "-q", "--python", sys._base_executable, str(scratch))
            _install(uv, scratch / "bin" / "python", target.requirements)
            versions = _installed_versions(scratch / "bin" / "python", target.environment.versioned)
            (scratch / STAMP).write_text(json.dumps({"requirements": list(target.requirements),
                                                     "versions": versions}, indent=1))
            os.rename(scratch, target.folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return python


def _install(uv: str, python: Path, requirements: tuple[str, ...]) -> None:
    """``uv pip install``; when the index cannot be reached, once more from uv's cache alone."""
    try:
        _uv(uv, "pip", "install", "-q", "--python", str(python), *requirements)
    except BuildError as online:
        try:
            _uv(uv, "pip", "install", "-q", "--offline", "--python", str(python), *requirements)
        except BuildError:
            raise online from None


def _uv(uv: str, *args: str) -> None:
    done = subprocess.run([uv, *args], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env={**os.environ, "UV_NO_PROGRESS": "1"})
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise BuildError(f"uv {args[0]} failed: {' | '.join(lines[-4:])[:600]}")


def _installed_versions(python: Path, distributions: tuple[str, ...]) -> dict[str, str]:
    script = ("import importlib.metadata as m, json, sys\n"
              "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))")
    done = subprocess.run([str(python), "-c", script, *distributions], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise BuildError(f"the built environment does not run: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def launch(backend_id: str, say=lambda text: None) -> Launch:
    """How to start ``backend_id``'s worker, building its environment if needed (``BuildError``)."""
    from harness.backends import backend_class
    target = target_of(backend_id)
    declared = backend_class(backend_id).worker_variables
    own = {name: value for name, value in declared.items() if name not in os.environ}   # the user's value wins
    if target is None or target.shared:
        # Our own interpreter: the child sees our import path (as ``spawn`` would hand it over).
        return Launch(sys.executable, {**own, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}, "shared")
    python = ensure(target, say)
    return Launch(str(python), {**own, "PYTHONPATH": str(_harness_link()), "PYTHONNOUSERSITE": "1"},
                  target.folder.name)


def _harness_link() -> Path:
    """A folder holding only a link to this process's ``harness`` package: a worker in another environment
    imports conform's code from it, and nothing else of ours (not our NumPy)."""
    package = Path(__file__).resolve().parent
    folder = home() / "_harness" / hashlib.sha256(str(package).encode()).hexdigest()[:12]
    link = folder / "harness"
    if not link.is_symlink() or link.resolve() != package:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder / f".harness.{os.getpid()}"
        scratch.unlink(missing_ok=True)
        scratch.symlink_to(package, target_is_directory=True)
        os.replace(scratch, link)
    return folder


def prune(keep: list[str]) -> list[Path]:
    """Remove every built environment (and stale lock or scratch) under ``home()`` that none of the backend
    ids ``keep`` runs in; returns what was removed. An environment is a cache: uv rebuilds one in seconds."""
    kept = {t.folder.name for t in (target_of(b) for b in keep) if t is not None and not t.shared}
    removed = []
    for entry in sorted(home().glob("*")) if home().is_dir() else []:
        name = entry.name.lstrip(".").removesuffix(".lock")
        if entry.name.startswith("_") or name.endswith(".building") or name in kept:
            continue    # the harness links, a build in progress (another run's), what is still used
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def label_of(backend_id: str) -> str:
    """Where a backend id runs, for reports and ``conform backends``: ``shared`` (conform's interpreter) or
    its environment's folder under ``home()``, with ``(not built)`` until it exists."""
    target = target_of(backend_id)
    if target is None or target.shared:
        return "shared"
    return target.folder.name + ("" if built(target) is not None else " (not built)")


def version_of(backend_id: str) -> Optional[str]:
    """The framework version a backend id runs: its environment's (built, else pinned), or the installed one."""
    from harness.backends import backend_class
    target = target_of(backend_id)
    if target is None or target.shared:
        return backend_class(backend_id).version()
    stamp = built(target)
    if stamp:
        return stamp["versions"].get(target.environment.distribution)
    return target.version or target.pinned_version


def availability(backend_id: str) -> tuple[bool, str]:
    """Whether a backend id can run here (a non-shared environment: if it is built or uv can build it)."""
    from harness.backends import backend_class
    target = target_of(backend_id)
    if target is None or target.shared:
        return backend_class(backend_id).availability()
    return (True, "") if built(target) is not None else buildable()


def buildable() -> tuple[bool, str]:
    """Whether environments can be built here (``uv`` is found)."""
    if uv_binary() is not None:
        return True, ""
    return False, "uv is not installed: it builds the environments of backends that need their own"
