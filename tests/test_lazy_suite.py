"""The lazy suite (``harness.cases.index_suite``, ``materialise``) and libyaml under ``harness.yamlsrc``.

A run validates every file up front, keeps one compact ``CaseRef`` per case and
rebuilds the ``Case`` objects one file at a time as the run reaches it; a file
edited in between never runs unvalidated content.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from harness import suite, yamlsrc
from harness.cases import Case, load_suite
from harness.cli import _of_op, _select
from harness.fuzz import generate
from harness.journal import plan_resume
from harness.runner import RunOptions, run
from harness.shards import Sharding, fingerprint
from harness.suite import CaseRef, index_suite, materialise
from harness.yamlsrc import ProblemsError, load_yaml
from tests.helpers import conform

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


# ---------------------------------------------------------------- the index and the rebuilt cases

def _suite(tmp_path: Path, files: int = 4, per_file: int = 6) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    for seed in range(1, files + 1):
        (folder / f"fuzz-{seed}.yaml").write_text(generate(per_file, seed), encoding="utf-8")
    return folder


def _same(case, ref) -> None:
    for name in ("id", "op", "file", "line", "mode", "description", "source", "content_hash", "flops", "gradients"):
        assert getattr(case, name) == getattr(ref, name), name
    assert (tuple(case.backends) if case.backends is not None else None) == ref.backends


def test_the_index_plans_as_the_cases_do(tmp_path):
    """-k, --op, --shard's costs and split, the suite record and --resume's plan: the same from either."""
    folder = _suite(tmp_path)
    cases, refs = load_suite([str(folder)]), index_suite([str(folder)])
    assert all(isinstance(r, CaseRef) for r in refs) and len(refs) == len(cases) == 24
    for case, ref in zip(cases, refs):
        _same(case, ref)
    backends = ["numpy", "torch.functional"]
    for mode in (None, "both"):
        assert fingerprint(refs, [], mode) == fingerprint(cases, [], mode)
        assert Sharding(refs, [], backends, mode, 3).shard_of == Sharding(cases, [], backends, mode, 3).shard_of
    assert [c.id for c in _select(refs, ["*-2-*"])] == [c.id for c in _select(cases, ["*-2-*"])] != []
    assert _of_op(refs, "conv2d_transpose") == refs
    records = [{"case": c.id, "backend": "numpy", "gradient": None, "verdict": "pass", "case_hash": c.content_hash,
                "backend_version": "1"} for c in cases[::2]]
    plans = [plan_resume([dict(r) for r in records], suite, ["numpy"], {"numpy": "1"}) for suite in (cases, refs)]
    assert plans[0].kept == plans[1].kept and plans[0].new == plans[1].new == 12


def test_cases_are_rebuilt_one_file_at_a_time_in_suite_order(tmp_path, monkeypatch):
    folder = _suite(tmp_path)
    refs = index_suite([str(folder)])
    read = []
    real = suite.iter_file
    monkeypatch.setattr(suite, "iter_file", lambda path, *a, **k: (read.append(path.name), real(path, *a, **k))[1])
    rebuilt = materialise(refs[5:20])   # a slice, as -k or a shard leaves
    first = next(rebuilt)
    assert read == ["fuzz-1.yaml"] and first.id == refs[5].id   # only the file the run has reached is read
    rest = list(rebuilt)
    assert read == ["fuzz-1.yaml", "fuzz-2.yaml", "fuzz-3.yaml", "fuzz-4.yaml"]
    assert [c.id for c in [first, *rest]] == [r.id for r in refs[5:20]]
    for case, ref in zip([first, *rest], refs[5:20]):
        assert isinstance(case, Case)
        _same(case, ref)


def _results(result) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "duration_ms"} for r in result.results]


def test_a_suite_of_many_files_runs_from_the_index_as_from_the_cases(tmp_path):
    folder = _suite(tmp_path, files=3, per_file=4)
    eager = run(load_suite([str(folder)]), RunOptions(backends=["numpy"], out=tmp_path / "eager"))
    lazy = run(index_suite([str(folder)]), RunOptions(backends=["numpy"], out=tmp_path / "lazy"))
    assert not lazy.incomplete and len(lazy.results) == 12
    assert _results(lazy) == _results(eager)


# ---------------------------------------------------------------- a file edited after validation

def _edit_one_case(path: Path) -> str:
    """Change the seed of the file's second case (its content); return its id."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["cases"][1]["data"]["seed"] += 1
    path.write_text("# edited\n" + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return doc["cases"][1]["id"]


def test_an_edited_case_is_not_run_and_named(tmp_path):
    folder = _suite(tmp_path, files=2, per_file=4)
    refs = index_suite([str(folder)])
    edited = _edit_one_case(folder / "fuzz-2.yaml")
    said: list[str] = []
    ids = [c.id for c in materialise(refs, said.append)]
    assert ids == [r.id for r in refs if r.id != edited]
    (message,) = said
    assert f"{folder / 'fuzz-2.yaml'} changed after it was validated" in message
    assert "not run: 1 of its cases (" in message
    assert edited in message


def test_an_edit_that_changes_no_case_runs_everything(tmp_path):
    """A comment, a reordered key: the text differs, every case is still what was validated."""
    folder = _suite(tmp_path, files=2, per_file=4)
    refs = index_suite([str(folder)])
    path = folder / "fuzz-1.yaml"
    path.write_text("# a comment added during the run\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    said: list[str] = []
    rebuilt = list(materialise(refs, said.append))
    assert [c.id for c in rebuilt] == [r.id for r in refs] and said == []
    assert rebuilt[0].line == refs[0].line + 1   # the cases as they now are


def test_a_file_gone_or_broken_runs_none_of_its_cases(tmp_path):
    folder = _suite(tmp_path, files=3, per_file=3)
    refs = index_suite([str(folder)])
    (folder / "fuzz-1.yaml").unlink()
    (folder / "fuzz-3.yaml").write_text("op: conv2d_transpose\ncases: [\n", encoding="utf-8")
    said: list[str] = []
    assert [c.id for c in materialise(refs, said.append)] == [r.id for r in refs[3:6]]
    assert len(said) == 2
    assert "fuzz-1.yaml cannot be read any more" in said[0] and "not run: 3 of its cases" in said[0]
    assert "fuzz-3.yaml changed after it was validated" in said[1] and "not run: 3 of its cases" in said[1]


def test_a_run_whose_file_was_edited_is_incomplete(tmp_path):
    folder = _suite(tmp_path, files=2, per_file=3)
    refs = index_suite([str(folder)])
    edited = _edit_one_case(folder / "fuzz-1.yaml")
    said: list[str] = []
    result = run(refs, RunOptions(backends=["numpy"], out=tmp_path / "out", on_changed=said.append))
    assert result.incomplete and len(said) == 1
    assert sorted(r["case"] for r in result.results) == sorted(r.id for r in refs if r.id != edited)


# ---------------------------------------------------------------- the command line

def test_a_bad_file_among_many_is_named_and_nothing_runs(tmp_path):
    folder = _suite(tmp_path, files=5, per_file=3)
    bad = folder / "fuzz-3.yaml"
    text = bad.read_text(encoding="utf-8").replace("stride: [", "stride: [-", 1)
    bad.write_text(text, encoding="utf-8")
    at = next(i for i, row in enumerate(text.splitlines(), 1) if "stride: [-" in row)
    for argv in (["validate"], ["run", "--backends", "numpy", "--out", tmp_path / "out", "--quiet"]):
        proc = conform(*argv, folder)
        assert proc.returncode == 2, proc.stderr
        assert f"{bad}:{at}: stride" in proc.stderr
        assert "nothing was run" in proc.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_run_from_the_command_line_reports_every_case_of_every_file(tmp_path):
    folder = _suite(tmp_path, files=3, per_file=3)
    proc = conform("run", folder, "--backends", "numpy", "--out", tmp_path / "out", "--quiet",
                   "-k", "fuzz-1-*", "-k", "fuzz-3-*")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["case"] for r in report["results"]] == [c.id for c in load_suite([str(folder)]) if c.id[5] in "13"]


def test_conform_run_names_a_file_edited_after_validation_and_is_incomplete(tmp_path, monkeypatch, capsys):
    from harness import cli
    folder = _suite(tmp_path, files=2, per_file=3)
    edited = []

    def validate_then_edit(*args, **kwargs):   # the user saves a file while the run starts
        refs = index_suite(*args, **kwargs)
        edited.append(_edit_one_case(folder / "fuzz-2.yaml"))
        return refs

    monkeypatch.setattr(suite, "index_suite", validate_then_edit)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)   # cli.main installs its own
    try:
        code = cli.main(["run", str(folder), "--backends", "numpy", "--out", str(tmp_path / "out"), "--quiet"])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    err = capsys.readouterr().err
    assert code == 1
    assert f"conform: {folder / 'fuzz-2.yaml'} changed after it was validated" in err
    assert "not run: 1 of its cases" in err
    assert edited[0] in err and "`conform run --resume` runs them" in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["incomplete"] and not report["gate"]["passed"]
    assert len(report["results"]) == 5 and edited[0] not in {r["case"] for r in report["results"]}
