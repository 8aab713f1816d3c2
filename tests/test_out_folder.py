"""The --out folder: the run owns only what it writes, one run at a time, and the reports change as one set.

Every test drives the real ``conform`` command on the in-house ``numpy``
backend (no framework needed). Failures are real: a lone surrogate in a
case file, a file-size limit (RLIMIT_FSIZE, EFBIG) in the conform process,
a full filesystem (a small tmpfs, ENOSPC), SIGKILL, and a second run racing
the first.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import ROOT, conform, start_conform, wait_for_results

SET = ("report.json", "report.html", "junit.xml", "summary.md")


def cases(path: Path, ids, input_=(1, 2, 5, 5), extra: str = "") -> Path:
    """A case file; ``extra`` is added to every case (e.g. an exact tolerance, so every result fails)."""
    body = "".join(f"  - id: {json.dumps(i)}\n" + textwrap.indent(extra, "    ") for i in ids)
    path.write_text(f"op: conv2d_transpose\ndefaults: {{input: {list(input_)}, out_channels: 2, kernel_size: 3, "
                    f"stride: 2, padding: 1}}\ncases:\n" + body, encoding="utf-8")
    return path


EXACT = "tolerance: {rtol: 0, atol: 0}\n"     # float32 vs the float64 oracle: every element fails, bound_ratio inf


def run(case_file, out, *args, **kw):
    return conform("run", case_file, "--backends", "numpy", "--out", out, "--quiet", *args, **kw)


def snapshot(out: Path) -> dict:
    """What a reader sees: every file of the set and of repro/, by content."""
    seen = {name: (out / name).read_bytes() for name in SET}
    seen.update({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "repro").rglob("*"))
                 if p.is_file()} if (out / "repro").exists() else {})
    return seen


def assert_one_set(out: Path) -> None:
    """report.json, junit.xml, summary.md and report.html describe the same results."""
    report = json.loads((out / "report.json").read_text())
    names = sorted(tc.get("name") for tc in ET.parse(out / "junit.xml").getroot().iter("testcase"))
    assert names == sorted(r["case"] for r in report["results"])
    assert f"{len(report['results'])} results" in (out / "summary.md").read_text()
    assert f"{len(report['results'])} results" in (out / "report.html").read_text()
    for r in report["results"]:
        if r.get("repro"):
            assert (out / r["repro"]).is_file(), r["repro"]


def leftovers(out: Path) -> list[str]:
    """Temporary files and unpublished generations: none may outlive a command."""
    root = out / ".conform"
    live = os.readlink(root / "current") if (root / "current").is_symlink() else None
    found = [p.name for p in root.iterdir() if p.name not in ("current", live)] if root.exists() else []
    return found + [p.name for p in out.rglob(".*.*") if p.name not in (".conform-out.json", ".conform-out.lock",
                                                                       ".inventory.json")]


# ---------------------------------------------------------------- ownership

def test_files_a_person_put_in_out_survive_every_run(tmp_path):
    case_file = cases(tmp_path / "c.yaml", ["a", "b"], extra=EXACT)
    out = tmp_path / "out"
    assert run(case_file, out).returncode == 1
    (out / "notes.md").write_text("mine")
    (out / "repro" / "notes.md").write_text("my notes on the reproducers")
    (out / "logs" / "notes.md").write_text("mine too")
    for extra in ((), ("--resume",), ()):
        proc = run(case_file, out, *extra)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert (out / "notes.md").read_text() == "mine"
        assert (out / "repro" / "notes.md").read_text() == "my notes on the reproducers"
        assert (out / "logs" / "notes.md").read_text() == "mine too"
        assert_one_set(out)
        assert not leftovers(out)
    manifest = json.loads((out / ".conform-out.json").read_text())
    assert "notes.md" not in manifest["owned"] and {"report.json", "repro", "results.jsonl"} <= set(manifest["owned"])


def test_a_file_named_like_a_report_that_conform_did_not_write_is_not_replaced(tmp_path):
    case_file = cases(tmp_path / "c.yaml", ["a"])
    out = tmp_path / "out"
    assert run(case_file, out).returncode == 0
    (out / "summary.md").unlink()
    (out / "summary.md").write_text("a person's summary")        # replaced conform's link with their own file
    proc = run(case_file, out)
    assert proc.returncode == 2 and "summary.md" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (out / "summary.md").read_text() == "a person's summary"


@pytest.mark.parametrize("where", ["root", "home", "cases folder", "parent of the cases", "foreign folder"])
def test_out_folders_conform_must_not_write_into_are_refused(tmp_path, where):
    folder = tmp_path / "suite"
    folder.mkdir()
    case_file = cases(folder / "c.yaml", ["a"])
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("years of work")
    out = {"root": Path("/"), "home": Path.home(), "cases folder": folder, "parent of the cases": tmp_path,
           "foreign folder": tmp_path / "foreign"}[where]
    before = sorted(os.listdir(out))
    proc = conform("run", folder if where == "cases folder" else case_file, "--backends", "numpy", "--out", out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--out {out}:" in proc.stderr and "refusing" in proc.stderr or "case files" in proc.stderr \
        or "not written by conform" in proc.stderr, proc.stderr
    assert sorted(os.listdir(out)) == before                       # nothing written, not even the lock


def test_a_folder_written_by_an_earlier_conform_is_adopted(tmp_path):
    """reports/ of `make conform` before manifests existed: every entry is a conform name, so it is conform's."""
    out = tmp_path / "reports"
    (out / "repro" / "old" / "numpy").mkdir(parents=True)
    for name in SET:
        (out / name).write_text("old")
    (out / "repro" / "old" / "numpy" / "repro.py").write_text("old")
    (out / "repro" / "notes.md").write_text("mine")
    (out / ".report.json.k2j4h_x9").write_text("")                  # what SIGKILL left behind before
    proc = run(cases(tmp_path / "c.yaml", ["a"]), out)
    assert proc.returncode == 0, proc.stderr
    assert_one_set(out)
    assert (out / "repro" / "notes.md").read_text() == "mine"
    assert not (out / "repro" / "old").exists() and not leftovers(out)


# ---------------------------------------------------------------- one run at a time

def test_a_second_run_into_a_busy_folder_is_refused_and_the_first_finishes_intact(tmp_path):
    ids = [f"case-{i}" for i in range(40)]
    case_file = cases(tmp_path / "many.yaml", ids, input_=(8, 32, 24, 24))
    out = tmp_path / "out"
    first = start_conform("run", case_file, "--backends", "numpy", "--out", out, "--quiet")
    wait_for_results(out / "results.jsonl", 2)
    first.send_signal(signal.SIGSTOP)          # holds the folder (and its lock) for as long as the second tries
    try:
        second = run(cases(tmp_path / "other.yaml", ["other"]), out)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert f"in use by pid {first.pid}" in second.stderr and "conform run" in second.stderr, second.stderr
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert [r["case"] for r in report["results"]] == ids
    journal = (out / "results.jsonl").read_bytes()
    assert b"\0" not in journal and [json.loads(line)["case"] for line in journal.splitlines()] == ids
    assert_one_set(out)


# ---------------------------------------------------------------- one set, whatever fails

def test_a_lone_surrogate_and_terminal_escapes_give_a_complete_new_set(tmp_path):
    out = tmp_path / "out"
    assert run(cases(tmp_path / "old.yaml", ["old-1", "old-2"]), out).returncode == 0
    hostile = cases(tmp_path / "new.yaml", ["new-1"], extra='description: "lone \\ud800, \\e[2J\\x9b31m and \\x00"\n')
    proc = run(hostile, out, "--quiet")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert_one_set(out)
    report = json.loads((out / "report.json").read_text())
    assert [r["case"] for r in report["results"]] == ["new-1"]
    assert report["results"][0]["description"].startswith("lone \ufffd")
    for name in SET:
        text = (out / name).read_text(encoding="utf-8")      # every file is valid UTF-8
        assert "\x1b" not in text and "\x9b" not in text and "\x00" not in text, name
    assert not leftovers(out)


def _limit_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_write_failing_mid_set_efbig_leaves_the_old_set_and_no_temporaries(tmp_path):
    out = tmp_path / "out"
    assert run(cases(tmp_path / "old.yaml", ["old"], extra=EXACT), out).returncode == 1
    old = snapshot(out)
    assert len((out / "report.json").read_bytes()) < 16_000 < len(old["report.html"])
    new = cases(tmp_path / "new.yaml", ["new-1", "new-2"])
    # RLIMIT_FSIZE in the conform process: report.json fits, report.html does not (EFBIG).
    proc = subprocess.run([sys.executable, "-m", "harness", "run", new, "--backends", "numpy", "--out", out,
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          preexec_fn=_limit_file_size(16_000))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "previous reports there are unchanged" in proc.stderr and "File too large" in proc.stderr
    assert snapshot(out) == old
    assert_one_set(out)
    assert not leftovers(out)


@pytest.fixture
def small_filesystem(tmp_path):
    """A 512 KiB tmpfs (needs root: mount(2)); skipped where it cannot be mounted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_full_filesystem_enospc_leaves_the_old_set_and_no_temporaries(tmp_path, small_filesystem):
    out = small_filesystem / "out"
    case_file = cases(tmp_path / "c.yaml", ["a", "b"])
    assert run(case_file, out).returncode == 0
    old = snapshot(out)
    # Fill the disk (a file that is not conform's) until less is free than a new report.html needs.
    stat = os.statvfs(small_filesystem)
    free = stat.f_bavail * stat.f_frsize
    (small_filesystem / "filler").write_bytes(b"\0" * (free - 24 * 1024))
    proc = run(case_file, out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "No space left on device" in proc.stderr and "previous reports there are unchanged" in proc.stderr
    assert snapshot(out) == old
    assert not leftovers(out)
    (small_filesystem / "filler").unlink()
    assert run(case_file, out).returncode == 0            # with room again, the next run publishes
    assert_one_set(out)


def test_sigkill_mid_run_leaves_the_old_set_and_the_next_run_clears_what_it_left(tmp_path):
    out = tmp_path / "out"
    assert run(cases(tmp_path / "old.yaml", ["old"], extra=EXACT), out).returncode == 1
    old = snapshot(out)
    many = cases(tmp_path / "many.yaml", [f"k-{i}" for i in range(40)], input_=(8, 32, 24, 24), extra=EXACT)
    proc = start_conform("run", many, "--backends", "numpy", "--out", out, "--quiet")
    wait_for_results(out / "results.jsonl", 3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert snapshot(out) == old                            # the new generation was never visible
    assert leftovers(out)                                  # ... but it is still there, with its reproducers
    assert run(cases(tmp_path / "next.yaml", ["next"]), out).returncode == 0
    assert not leftovers(out)
    assert_one_set(out)


def test_a_write_failing_while_the_run_goes_efbig_is_exit_2_and_the_old_set_stays(tmp_path):
    """The journal (results.jsonl) and the reproducers are written during the run, before any report: a
    file-size limit hit there is the same clean failure as one hit while publishing, not a traceback."""
    out = tmp_path / "out"
    assert run(cases(tmp_path / "old.yaml", ["old"], extra=EXACT), out).returncode == 1
    old = snapshot(out)
    many = cases(tmp_path / "many.yaml", [f"case-{i}" for i in range(40)])   # a journal of ~40 KB
    proc = subprocess.run([sys.executable, "-m", "harness", "run", many, "--backends", "numpy", "--out", out,
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          preexec_fn=_limit_file_size(8_000))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "File too large" in proc.stderr and "previous reports there are unchanged" in proc.stderr
    assert snapshot(out) == old
    assert not leftovers(out)
