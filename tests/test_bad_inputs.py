"""The bad-input corpus: every malformed case file is refused precisely, fast, without a traceback.

Each ``tests/bad_inputs/NAME.yaml`` has a ``NAME.expect`` beside it holding
``line<TAB>field<TAB>message fragment``: the problem conform must print as
``file:line: field: message``. The corpus covers YAML syntax, wrong types,
unknown keys, impossible parameters, huge shapes and hostile strings.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "tests" / "bad_inputs").glob("*.yaml"))


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30
    assert all(p.with_suffix(".expect").exists() for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_input_is_refused_with_file_line_field(path):
    line, field, fragment = path.with_suffix(".expect").read_text().rstrip("\n").split("\t")
    relative = path.relative_to(ROOT)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness", "validate", str(relative)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    prefix = f"{relative}:{line}: {field}: "
    matching = [m for m in proc.stderr.splitlines() if m.startswith(prefix)]
    assert matching and fragment in matching[0], proc.stderr
    assert "nothing was run" in proc.stderr
    assert elapsed < 1.0, f"{elapsed:.2f} s"


@pytest.mark.parametrize("name", ["huge_memory", "matrix_explosion", "python_object_tag", "yaml_unclosed_bracket"])
def test_run_refuses_before_running_anything(tmp_path, name):
    path = (ROOT / "tests" / "bad_inputs" / f"{name}.yaml").relative_to(ROOT)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
