"""The bad-input corpus: every malformed case file is refused precisely, fast, without a traceback.

Each ``tests/bad_inputs/NAME.yaml`` has a ``NAME.expect`` beside it holding
``line<TAB>field<TAB>message fragment``: the problem conform must print as
``file:line: field: message``. The corpus covers YAML syntax, wrong types,
unknown keys, impossible parameters, huge shapes, hostile strings, characters
YAML forbids (NUL, ESC, C1, U+FFFE), core tags on wrong scalars, huge integers,
deep nesting and matrix values that cannot be spelled in an id.

What cannot live in a checked-in file is built per test: FIFOs and device
symlinks named ``*.yaml``, files over the size limits, an unreadable folder, an
unusable ``--out``, hostile registry files and report.json files with odd
field types. Every subprocess has a 10 s timeout: a hang guard, not a benchmark.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "tests" / "bad_inputs").glob("*.yaml"))
HANG_GUARD_S = 10


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 60
    assert all(p.with_suffix(".expect").exists() for p in CORPUS)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_input_is_refused_with_file_line_field(path):
    line, field, fragment = path.with_suffix(".expect").read_text().rstrip("\n").split("\t")
    relative = path.relative_to(ROOT)
    proc = subprocess.run([sys.executable, "-m", "harness", "validate", str(relative)], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    prefix = f"{relative}:{line}: {field}: "
    matching = [m for m in proc.stderr.splitlines() if m.startswith(prefix)]
    assert matching and fragment in matching[0], proc.stderr
    assert "nothing was run" in proc.stderr


@pytest.mark.parametrize("name", ["huge_memory", "matrix_explosion", "python_object_tag", "yaml_unclosed_bracket"])
def test_run_refuses_before_running_anything(tmp_path, name):
    path = (ROOT / "tests" / "bad_inputs" / f"{name}.yaml").relative_to(ROOT)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


# --- hostile files that cannot be checked in ------------------------------------------------------------

VALID = "op: conv2d_transpose\ncases:\n  - id: ok\n    input: [1, 2, 5, 5]\n    out_channels: 2\n    kernel_size: 3\n"


def conform(*args, preexec_fn=None) -> subprocess.CompletedProcess:
    """``conform ARGS`` from the repository root, with the hang guard."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=HANG_GUARD_S, preexec_fn=preexec_fn)


def refused(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Assert exit 2, no traceback, and every fragment on one stderr line; return stderr."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert any(all(f in row for f in fragments) for row in proc.stderr.splitlines()), proc.stderr
    return proc.stderr


def suite(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "ok.yaml").write_text(VALID)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_a_fifo_named_yaml_is_refused_without_opening_it(tmp_path):
    folder = suite(tmp_path)
    os.mkfifo(folder / "pipe.yaml")   # open() for reading would wait for a writer forever
    refused(conform("validate", folder), f"{folder / 'pipe.yaml'}:1: file: is a FIFO")
    refused(conform("validate", folder / "pipe.yaml"), "pipe.yaml:1: file: is a FIFO")


def test_a_symlink_to_a_device_is_refused_without_reading_it(tmp_path):
    folder = suite(tmp_path)
    (folder / "zero.yaml").symlink_to("/dev/zero")   # an endless read
    refused(conform("validate", folder), f"{folder / 'zero.yaml'}:1: file: is a character device")


def test_a_huge_file_is_refused_by_its_size_before_it_is_read(tmp_path):
    folder = suite(tmp_path)
    with open(folder / "huge.yaml", "wb") as handle:   # sparse: 50 MB to stat, nothing on disk
        handle.truncate(50 * 1000 * 1000)
    refused(conform("validate", folder), f"{folder / 'huge.yaml'}:1: file: is 47.7 MiB; the limit is 1 MiB")


def test_the_whole_suite_is_bounded_too(tmp_path):
    from harness.discovery import MAX_SUITE_BYTES
    from harness.userfile import MAX_SOURCE_BYTES
    folder = suite(tmp_path)
    for i in range(MAX_SUITE_BYTES // MAX_SOURCE_BYTES + 1):   # each file within its own limit
        with open(folder / f"part{i:02}.yaml", "wb") as handle:
            handle.truncate(MAX_SOURCE_BYTES)
    refused(conform("validate", folder), "file: the case files up to this one total", "the limit for one suite is")


def _permission_bits_bind(probe: str):
    """A preexec_fn under which permission bits stop this process's children, or skip.

    Root ignores permission bits through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH;
    dropping both from the bounding set before exec takes them from the child
    (root's capabilities after exec are the inheritable set, empty here, plus the
    bounding set). ``probe`` (Python source) must raise PermissionError in such a
    child: it proves the folder really is closed to conform.
    """
    def drop():
        if os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (1, 2):   # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                if libc.prctl(24, cap, 0, 0, 0) != 0:   # PR_CAPBSET_DROP
                    os._exit(97)
    probe_proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, preexec_fn=drop,
                                timeout=HANG_GUARD_S)
    if probe_proc.returncode != 1 or b"PermissionError" not in probe_proc.stderr:
        pytest.skip("cannot close a folder to a child process here (permission bits do not bind)")
    return drop


def test_an_unreadable_subfolder_is_reported_not_skipped(tmp_path):
    folder = suite(tmp_path)
    locked = folder / "locked"
    locked.mkdir()
    (locked / "hidden.yaml").write_text(VALID.replace("id: ok", "id: hidden"))
    locked.chmod(0)
    try:
        drop = _permission_bits_bind(f"import os; os.listdir({str(locked)!r})")
        refused(conform("validate", folder, preexec_fn=drop),
                f"{locked}:0: path: cannot list this folder: Permission denied")
    finally:
        locked.chmod(0o755)


def test_out_that_cannot_be_written_is_refused_before_running(tmp_path):
    case = suite(tmp_path) / "ok.yaml"
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    refused(conform("run", case, "--backends", "numpy", "--out", a_file / "out"),
            f"--out {a_file / 'out'}: is under {a_file}, a file")
    refused(conform("run", case, "--backends", "numpy", "--out", a_file), "exists and is not a folder")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        drop = _permission_bits_bind(f"open({str(read_only / 'probe')!r}, 'w')")
        refused(conform("run", case, "--backends", "numpy", "--out", read_only / "out", preexec_fn=drop),
                f"{read_only} is not writable")
    finally:
        read_only.chmod(0o755)
    assert not (read_only / "out").exists()


@pytest.mark.parametrize("text,fragment", [
    ("divergences: []\n# \x1b[2J\n", ":2: yaml: character U+001B at column 3"),
    ("divergences:\n  - id: !!int \"F1\"\n", ":2: divergences[0].id: 'F1' is not a valid int"),
    ("divergences: " + "[" * 200 + "]" * 200 + "\n", ":1: yaml: nesting is deeper than 64 levels"),
], ids=["escape", "int_tag", "deep"])
def test_a_hostile_registry_is_a_problem_with_its_line(tmp_path, text, fragment):
    folder = suite(tmp_path, **{"known_divergences.yaml": text})
    refused(conform("validate", folder), str(folder / "known_divergences.yaml") + fragment)


def test_a_registry_that_is_a_fifo_is_refused(tmp_path):
    folder = suite(tmp_path)
    os.mkfifo(folder / "known_divergences.yaml")
    refused(conform("validate", folder), "known_divergences.yaml:1: file: is a FIFO")


@pytest.mark.parametrize("args,fragment", [
    (["run", "--jobs", "100000", "--out", "/tmp/unused"], "is out of range (a count of calls from 1 to 64)"),
    (["fuzz", "3", "--seed", "-1"], "argument --seed: '-1' is out of range (a seed from 0 to"),
    (["fuzz", "3", "--seed", str(10**200)], "argument --seed: "),
    (["fuzz", "0"], "argument count: '0' is out of range (a count of cases from 1 to 3000)"),
    (["fuzz", "3001"], "argument count: '3001' is out of range (a count of cases from 1 to 3000)"),
    (["bench", "--repeats", "0"], "argument --repeats: '0' is out of range (a count from 1 to 10000)"),
    (["bench", "--repeats", "100000000"], "argument --repeats: '100000000' is out of range"),
    (["bench", "--warmup-time", "-1"], "argument --warmup-time: '-1' is out of range (seconds from 0 to 60)"),
], ids=["jobs", "seed_negative", "seed_huge", "count_zero", "count_too_large", "repeats_zero", "repeats_huge",
                    "warmup_time_negative"])
def test_cli_counts_are_validated(args, fragment):
    refused(conform(*args), fragment)


# --- report.json with odd field types -------------------------------------------------------------------

SAMPLE = ROOT / "tests" / "data" / "report_sample.json"   # five results of a real run, one made an xfail


def _paths(value, path=()):
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, path + (key,))


def _odd(value):
    """A value of another JSON type than ``value``."""
    if isinstance(value, bool) or value is None:
        return {"x": [1]}
    return {dict: -1, list: "x", str: [], int: "x", float: ["nan"]}[type(value)]


def test_report_and_diff_refuse_odd_field_types_without_a_traceback(tmp_path):
    """Every field of a real report replaced by a value of another type: exit 0, 1 or 2, never a traceback."""
    from harness import cli
    base = json.loads(SAMPLE.read_text())
    mutated, refused_paths = tmp_path / "report.json", set()
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)   # cli.main installs its own
    try:
        for path in list(_paths(base))[1:]:
            doc = copy.deepcopy(base)
            holder = doc
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = _odd(holder[path[-1]])
            mutated.write_text(json.dumps(doc))
            for argv in (["report", mutated, "--out", tmp_path / "out"], ["diff", SAMPLE, mutated]):
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                    code = cli.main([str(a) for a in argv])
                assert code in (0, 1, 2), (path, argv[0], code)
                assert code != 2 or "conform.report/1 report" in err.getvalue(), err.getvalue()
                if code == 2:
                    refused_paths.add(path)
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    # Each of these crashed a reader before the shape check (found by this test with the check disabled).
    assert {("results",), ("results", 0), ("results", 0, "case"), ("results", 0, "verdict"),
            ("results", 0, "params"), ("results", 0, "metrics"), ("results", 0, "tolerance"),
            ("results", 3, "error"), ("results", 4, "divergence"), ("summary", "by_backend"),
            ("environment", "backends"), ("stale_divergences",)} <= refused_paths


def test_report_with_odd_types_exits_2_from_the_command_line(tmp_path):
    doc = json.loads(SAMPLE.read_text())
    doc["results"][0]["metrics"] = -1
    doc["summary"]["by_backend"] = [1]
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps(doc))
    refused(conform("report", bad), "results[0].metrics", "summary.by_backend")
    refused(conform("diff", SAMPLE, bad), "not a readable conform.report/1 report")
    os.mkfifo(tmp_path / "pipe.json")
    refused(conform("diff", SAMPLE, tmp_path / "pipe.json"), "is a FIFO")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(conform("report", tmp_path / "deep.json"), "cannot read a report")


# --- what reaches the terminal ----------------------------------------------------------------------------

def test_printable_makes_control_characters_and_escapes_visible():
    from harness.text import printable
    assert printable("a\x1b[31mb\x9bc\x00\x07\ud800\u202e\ufffe") == "a\\x1b[31mb\\x9bc\\x00\\x07\\ud800\\u202e\\ufffe"
    assert printable("two\nlines\r") == "two\\nlines\\r"
    assert printable("two\nlines", keep="\n") == "two\nlines"
    assert printable("tab\tcafé ✓ [x]", keep="\t") == "tab\tcafé ✓ [x]"
    assert printable(12) == "12" and printable(None) == ""


def test_the_terminal_summary_carries_no_raw_escape_sequences():
    from rich.console import Console

    from harness.report.terminal import print_summary
    report = json.loads(SAMPLE.read_text())
    report["results"][2]["reason"] = "boom \x1b[2J\x1b]0;title\x07 \x9b31m [bold]x[/] \ud800 two\nlines"
    report["stale_divergences"][0]["reason"] = "\x1b[5mblink"
    out = io.StringIO()
    print_summary(report, Console(file=out, force_terminal=True, width=300))
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())   # rich's own colours are the only escapes left
    assert not any(c in text for c in "\x1b\x9b\x07\ud800"), repr(text)
    assert "boom \\x1b[2J\\x1b]0;title\\x07 \\x9b31m [bold]x[/] \\ud800 two\\nlines" in text
    assert "\\x1b[5mblink" in text


@pytest.mark.parametrize("shard", ["", "0/0", "3/2", "a/b", "1/0"])
def test_a_bad_shard_is_refused_before_the_case_files_are_read(shard):
    # The case file is bad too: the option is checked first, so its message is the one printed.
    proc = conform("run", "tests/bad_inputs/huge_memory.yaml", "--shard", shard, "--out", "/tmp/unused")
    refused(proc, "argument --shard: ")
    assert "huge_memory.yaml" not in proc.stderr


def test_diff_shows_hostile_text_from_a_report_as_escapes(tmp_path):
    """A report.json is user input: its strings reach the terminal escaped, lone surrogates included."""
    new = json.loads(SAMPLE.read_text())
    new["results"][0]["verdict"] = "crash\x1b[2J\x9b31m"
    new["results"][1]["backend"] = "\ud800\u202e"
    (tmp_path / "new.json").write_text(json.dumps(new))     # ensure_ascii: "\ud800" stays a JSON escape
    proc = conform("diff", SAMPLE, tmp_path / "new.json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "\x1b" not in proc.stdout and "\x9b" not in proc.stdout and "\u202e" not in proc.stdout
    assert "crash\\x1b[2J\\x9b31m" in proc.stdout and "\\ud800\\u202e" in proc.stdout


def test_the_largest_fuzz_file_is_one_conform_reads():
    """`conform fuzz N > f.yaml` must give a file `conform run f.yaml` accepts (10,000 cases were 2.4 MiB)."""
    from harness.fuzz import MAX_CASES, generate
    from harness.userfile import MAX_SOURCE_BYTES
    text = generate(MAX_CASES, 2**63 - 1)        # the longest seed: the longest ids
    assert len(text.encode("utf-8")) <= 0.85 * MAX_SOURCE_BYTES


def test_a_symlink_loop_named_like_a_case_file_is_reported_as_one(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    refused(conform("validate", tmp_path / "a.yaml"), "a.yaml:1: file: cannot read: Too many levels of symbolic links")
    refused(conform("validate", tmp_path), "a.yaml:1: file: cannot read: Too many levels of symbolic links")


def test_max_memory_accepts_every_unit_its_message_names():
    ok = conform("validate", "cases/conv2d_transpose/errors.yaml", "--max-memory", "1PiB")
    assert ok.returncode == 0, ok.stderr
    refused(conform("validate", "cases/conv2d_transpose/errors.yaml", "--max-memory", "2PiB"),
            "'2PiB' is out of range (a memory size from 1MiB to 1PiB)")
