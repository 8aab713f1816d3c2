"""The lazy suite (``harness.cases.index_suite``, ``materialise``) and libyaml under ``harness.yamlsrc``.

A run validates every file up front, keeps one compact ``CaseRef`` per case and
rebuilds the ``Case`` objects one file at a time as the run reaches it; a file
edited in between never runs unvalidated content.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import yamlsrc
from harness.yamlsrc import ProblemsError, load_yaml

ROOT = Path(__file__).resolve().parents[1]
YAML_FILES = sorted((ROOT / "cases").rglob("*.yaml")) + sorted((ROOT / "tests" / "bad_inputs").glob("*.yaml"))


def _outcome(text: str):
    try:
        located = load_yaml(text, "f.yaml")
    except ProblemsError as exc:
        return "problems", [str(p) for p in exc.problems]
    return "value", located.value, located.lines


@pytest.mark.skipif(yamlsrc.CParser is None, reason="PyYAML is built without libyaml")
@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_libyaml_gives_what_the_pure_loader_gives(path, monkeypatch):
    """Same values, same line of every path, same problems (Note [Two parsers])."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    fast = _outcome(text)
    if "bad_inputs" not in path.parts:   # a good file really is read by libyaml, not by the fallback
        assert yamlsrc._fast_node(text) is not None
    monkeypatch.setattr(yamlsrc, "CParser", None)
    assert fast == _outcome(text)


def test_a_document_libyaml_refuses_gets_the_pure_loaders_message():
    text = "op: conv2d_transpose\ncases:\n- id: a\n   input: [1, 2]\n"
    with pytest.raises(ProblemsError) as info:
        load_yaml(text, "f.yaml")
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == ("f.yaml", 4, "yaml")
    assert "mapping values are not allowed here" in problem.message   # PyYAML's words, not libyaml's
