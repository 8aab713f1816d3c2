"""The shipped known-divergence entries match exactly the results that diverge, in both directions.

The default suite, 300 ``conform fuzz`` cases and a few cases a user would
write (a U-Net decoder step, 'valid' with a kernel below the stride) run on
MindSpore, TensorFlow and Keras (tf.keras) with an *empty* registry, so every verdict is the
framework's own. Then each result is checked against the shipped registry:
every failing result is matched by an entry that expects its verdict (the
entry recognises the divergence, whatever the case is called), and no entry
matches a result that passes (the entry never claims a case without it).
Entries whose edge a framework's rule draws are checked on near misses on both sides of it (F3, F5, F7,
PL1, PL4 on MindSpore and TensorFlow; J4 on jax.lax's gradients).

That run also holds the invalid calls and near misses of the tests further down (one run, one start-up of
each framework's worker, instead of three); each test reads only the results of its own files.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from harness import divergences, envs
from harness.backends import matches
from harness.compare import GREEN
from tests.helpers import ROOT, conform, write

MISSING = [m for m in ("tensorflow", "mindspore", "keras") if importlib.util.find_spec(m) is None]
BACKENDS = "mindspore.nn,tf.nn,tf.keras"
SHIPPED = ROOT / "cases" / "known_divergences.yaml"

USER_CASES = """
    op: conv2d_transpose
    cases:
      - id: unet-up            # k 3, s 2, padding 1, output_padding 1: exactly F2
        input: [1, 16, 8, 8]
        out_channels: 8
        kernel_size: 3
        stride: 2
        padding: 1
        output_padding: 1
        matrix: {bias: [true, false], layout: [NCHW, NHWC], dtype: [float32, float16]}
      - id: upsample-k1        # 'valid' with an (effective) kernel below the stride: exactly F1
        input: [2, 3, 5, 6]
        out_channels: 2
        padding: valid
        matrix:
          kernel_size: [1, [2, 3]]
          stride: [[2, 4], 4]
      - id: upsample-dilated   # K = 2·(2−1)+1 = 3 < 4
        input: [1, 2, 4, 4]
        out_channels: 2
        kernel_size: 2
        dilation: 2
        stride: 4
        padding: valid
      # the same shapes without the divergence
      - id: unet-up-no-crop    # the added rows lie past the full output: zeros are right
        input: [1, 16, 8, 8]
        out_channels: 8
        kernel_size: 3
        stride: 2
        output_padding: 1
      - id: unet-up-impulse    # the impulse never reaches the cropped rows
        input: [1, 4, 8, 8]
        out_channels: 4
        kernel_size: 3
        stride: 2
        padding: 1
        output_padding: 1
        data: {x: impulse}
      - id: valid-kernel-at-stride
        input: [1, 3, 5, 6]
        out_channels: 2
        kernel_size: 3
        stride: [2, 3]
        padding: valid
"""


def exact_matches(report: dict, registry) -> dict[str, set[str]]:
    """Assert that every failing result is matched by an entry expecting its verdict and that no entry
    matches a result that passes (but an intermittent one, which may); return the cases each entry matched."""
    versions = {b: e["version"] for b, e in report["environment"]["backends"].items()}
    unexplained, claimed, matched = [], [], {}
    for r in report["results"]:
        selector = registry.match(r, versions[r["backend"]])
        if r["verdict"] not in GREEN and (selector is None or r["verdict"] not in selector.entry.verdicts()):
            unexplained.append((r["backend"], r["case"], r["verdict"], r["reason"]))
        if r["verdict"] in GREEN and selector is not None and not selector.entry.intermittent:
            claimed.append((r["backend"], r["case"], r["verdict"], selector.entry.id))
        if selector is not None:
            matched.setdefault(selector.entry.id, set()).add(r["case"])
    assert not unexplained, unexplained
    assert not claimed, claimed
    return matched


#: The operators' suites: cases/ without cases/claims, which holds claims only (the run would judge them
#: in workers of their own, and no assertion here reads claims).
SUITE = sorted(p for p in (ROOT / "cases").iterdir() if p.is_dir() and p.name != "claims")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The one run on BACKENDS with an empty registry: the default suite, 300 fuzz cases, the user's cases and
    the case files of INVALID_CASES and NEAR_MISSES; ``raw(*files)`` is its report with the results of those
    files only (the default suite is ``SUITE``)."""
    if MISSING:
        pytest.skip(f"not installed: {', '.join(MISSING)}")
    tmp = tmp_path_factory.mktemp("registry-scope")
    fuzz = tmp / "fuzz.yaml"
    fuzz.write_text(conform("fuzz", 300, "--seed", 20261201).stdout)
    files = {"fuzz": fuzz, "user": write(tmp / "user.yaml", USER_CASES),
             "invalid": write(tmp / "invalid.yaml", INVALID_CASES),
             **{name: write(tmp / name, text) for name, text in NEAR_MISSES.items()}}
    empty = write(tmp / "empty.yaml", "divergences: []\n")
    out = tmp / "raw"
    conform("run", *SUITE, *files.values(), "--backends", BACKENDS, "--registry", empty, "--out", out, "--quiet")
    report = json.loads((out / "report.json").read_text())

    def results_of(*names: str) -> dict:
        paths = [files[n] if n in files else n for n in names]
        mine = [r for r in report["results"]
                if any((ROOT / r["file"]).resolve().is_relative_to(p.resolve()) for p in paths)]
        assert mine, names
        return {**report, "results": mine}
    return results_of


def test_shipped_entries_match_exactly_the_divergent_results(raw):
    registry = divergences.load(SHIPPED)
    matched = exact_matches(raw(*SUITE, "fuzz", "user"), registry)
    ran = BACKENDS.split(",")   # every forward entry of a backend that ran is exercised (other surfaces, and
    # gradient entries: their own tests)
    assert set(matched) == {e.id for e in registry.entries
                            if not e.gradients() and any(matches(b, [e.backend]) for b in ran)}
    # both sources carry F1 and F2: a random case is recognised as well as the suite's own
    for entry in ("F1-", "F2-"):
        ids = next(cases for eid, cases in matched.items() if eid.startswith(entry))
        assert any(c.startswith("fuzz-") for c in ids) and any(c.startswith(("stride", "output-padding", "one-by"))
                                                               for c in ids), (entry, sorted(ids)[:5])
    user_ids = {c for cases in matched.values() for c in cases if c.startswith(("unet", "upsample", "valid-"))}
    assert len([c for c in user_ids if c.startswith("unet-up[")]) == 8   # bias × layout × dtype
    assert not any(c.startswith(("unet-up-no-crop", "unet-up-impulse", "valid-kernel")) for c in user_ids)


#: Suite cases around MindSpore's gradient entries (docs/findings.md F2, PL2, PL8, MO6, MO7) and their neighbours.
GRADIENT_CASES = ["output-padding", "output-shape-explicit", "keras-bias-nhwc", "avg-count-pad-same", "avg-dtype",
                  "max-dtype", "avg-edge-empty-batch", "max-edge-empty-batch", "max-dilation",
                  "pairwise[*output_padding=*", "pairwise[*dtype=float64*"]


@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="not installed: mindspore")
def test_gradient_entries_match_exactly_the_divergent_gradients(tmp_path):
    """Both MindSpore surfaces in backward mode: every failing gradient result is its entry's, no passing one is."""
    user = write(tmp_path / "user.yaml", USER_CASES)
    empty = write(tmp_path / "empty.yaml", "divergences: []\n")
    out = tmp_path / "raw"
    selection = [arg for pattern in GRADIENT_CASES for arg in ("-k", pattern)] + ["-k", "unet-*"]
    conform("run", ROOT / "cases", user, *selection, "--backends", "mindspore.nn,mindspore.ops", "--mode", "both",
            "--registry", empty, "--out", out, "--quiet")
    report = json.loads((out / "report.json").read_text())
    if any(r["verdict"] == "skipped" for r in report["results"]):
        pytest.skip("the mindspore environment could not be built here")
    registry = divergences.load(SHIPPED)
    matched = exact_matches(report, registry)
    gradient_entries = {e.id for e in registry.entries if e.gradients() and e.backend.startswith("mindspore")}
    assert set(matched) >= gradient_entries, gradient_entries - set(matched)
    # the user's U-Net step: its x and w gradients too; the added rows past the full output leave them alone
    grads = {(r["case"], r["gradient"]): r["verdict"] for r in report["results"]
             if r["backend"] == "mindspore.nn" and r["gradient"]}
    assert {v for (c, g), v in grads.items() if c.startswith("unet-up[") and g in "xw"} == {"value_mismatch"}
    assert {v for (c, g), v in grads.items() if c.startswith("unet-up-no-crop") and g in "xw"} == {"pass"}


@pytest.mark.skipif(bool(MISSING), reason=f"not installed: {', '.join(MISSING)}")
def test_user_cases_with_a_known_divergence_are_xfail_with_the_project_registry(tmp_path):
    user = write(tmp_path / "user.yaml", USER_CASES)
    out = tmp_path / "out"
    run = conform("run", user, "--backends", "mindspore.nn", "--registry", SHIPPED, "--out", out)
    report = json.loads((out / "report.json").read_text())
    verdicts = {r["case"]: r["verdict"] for r in report["results"]}
    assert run.returncode == 0 and report["gate"]["passed"], run.stdout
    known = {c: v for c, v in verdicts.items() if c.startswith(("unet-up[", "upsample"))}
    assert known and all(v == "xfail" for v in known.values()), known
    assert all(verdicts[c] == "pass" for c in verdicts if c.startswith(("unet-up-", "valid-kernel"))), verdicts


@pytest.mark.skipif(importlib.util.find_spec("mindspore") is None, reason="not installed: mindspore")
def test_a_near_miss_says_what_it_resembles_and_resume_judges_it_again(tmp_path):
    cases = write(tmp_path / "op.yaml", """
        op: conv2d_transpose
        cases:
          - id: decoder-step
            input: [1, 2, 4, 4]
            out_channels: 2
            kernel_size: 3
            stride: 2
            padding: 1
            output_padding: 1
    """)
    near = write(tmp_path / "near.yaml", """
        divergences:
          - id: F2-half
            op: conv2d_transpose
            backend: mindspore.nn
            when: {padding_form: explicit, output_padding_holds_values: true, dtype: float16}
            verdict: value_mismatch
            reason: an entry for float16 only, which this float32 case resembles
            link: https://example.org/f2
    """)
    out = tmp_path / "out"
    proc = conform("run", cases, "--backends", "mindspore.nn", "--registry", near, "--out", out)
    (result,) = json.loads((out / "report.json").read_text())["results"]
    assert proc.returncode == 1 and result["verdict"] == "value_mismatch"
    assert result["resembles"] == {"id": "F2-half", "link": "https://example.org/f2",
                                   "href": "https://example.org/f2", "failed_conditions": ["dtype"]}
    assert "resembles F2-half (differs in: dtype)" in proc.stdout
    # The journal is judged again with the project's registry: now it is the known F2, and resembles nothing.
    proc = conform("run", cases, "--backends", "mindspore.nn", "--registry", SHIPPED, "--out", out, "--resume")
    (result,) = json.loads((out / "report.json").read_text())["results"]
    assert proc.returncode == 0 and result["verdict"] == "xfail" and "resembles" not in result
    assert result["divergence"]["id"].startswith("F2-")


#: Invalid calls near F3 and F5: the divergence alone, and with a second defect the framework does catch.
INVALID_CASES = """
    op: conv2d_transpose
    defaults: {expect: {error: true}, input: [1, 2, 1, 4], out_channels: 2, kernel_size: 2}
    cases:
      - {id: f3, padding: [1, 1, 0, 0]}                                      # 0 rows: accepted (F3)
      - {id: f3-negative-width, input: [1, 2, 1, 1], padding: [1, 1, 2, 1]}  # and -1 columns: rejected
      - {id: f3-output-padding, padding: [1, 1, 0, 0], output_padding: [0, 3]}
      - {id: f3-groups, input: [1, 3, 1, 4], groups: 2, padding: [1, 1, 0, 0]}
      - {id: f5, stride: 2, padding: valid, output_shape: [1, 8]}            # trunc((1 - 2)/2) + 1 = 1 (F5)
      - {id: f5-k3-s3, kernel_size: 3, stride: 3, padding: valid, output_shape: [1, 12]}
      - {id: f5-k3-s1, kernel_size: 3, padding: valid, output_shape: [2, 6]} # trunc(-1/1) + 1 = 0: rejected
      - {id: f5-width-unreachable, stride: 2, padding: valid, output_shape: [1, 11]}
      - {id: f5-groups, input: [1, 3, 1, 4], groups: 2, stride: 2, padding: valid, output_shape: [1, 8]}
"""


def test_invalid_call_entries_do_not_claim_calls_the_framework_rejects_for_another_reason(raw):
    report = raw("invalid")
    verdicts = {(r["backend"], r["case"]): r["verdict"] for r in report["results"]}
    # The frameworks behave as the cases say (so the test checks the entries, not a stale assumption).
    assert verdicts["tf.nn", "f3"] == verdicts["mindspore.nn", "f3"] == "missing_error"
    assert verdicts["tf.nn", "f5"] == verdicts["tf.nn", "f5-k3-s3"] == "missing_error"
    assert all(verdicts["tf.nn", c] == "pass" for c in ("f3-output-padding", "f5-k3-s1", "f5-width-unreachable",
                                                         "f5-groups", "f3-negative-width")), verdicts
    matched = exact_matches(report, divergences.load(SHIPPED))
    assert matched == {"F3-tf-zero-size-output": {"f3"}, "F3-mindspore-zero-size-output": {"f3"},
                       "F5-tf-onednn-valid-output-shape-below-kernel": {"f5", "f5-k3-s3"}}, matched


# Near misses of the conv2d and pooling size entries (F7, PL1, PL4): windows that exceed the (padded)
# input by o rows, on both sides of each entry's edge. Sizes with truncating division reach further
# than the canonical floor: TensorFlow's trunc((P − K + s)/s) is 0 for o = 1..2s − 1, AvgPool3D's
# ceil-mode size is 1 for o = s..2s − 2, and MindSpore's Conv2D is empty only for o = s.
NEAR_MISSES = {
    "avg.yaml": """
        op: avg_pool2d
        defaults: {input: [1, 2, 4, 5], expect: {error: true}}
        cases:
          - {id: pl1-avg-o4-s3, kernel_size: [8, 2], stride: [3, 1], padding: valid}   # TF: empty
          - {id: pl1-avg-o6-s3, kernel_size: [10, 2], stride: [3, 1], padding: valid}  # TF: rejected
          - {id: pl4-avg-o3-s3, input: [1, 2, 3, 3], kernel_size: [6, 1], stride: [3, 1], ceil_mode: true}
          - {id: pl4-avg-o4-s3, input: [1, 2, 3, 3], kernel_size: [7, 1], stride: [3, 1], ceil_mode: true}
          - {id: pl4-avg-o5-s3, input: [1, 2, 3, 3], kernel_size: [8, 1], stride: [3, 1], ceil_mode: true}
    """,
    "max.yaml": """
        op: max_pool2d
        defaults: {input: [1, 2, 4, 5], padding: valid, expect: {error: true}}
        cases:
          - {id: pl1-max-o4-s3, kernel_size: [8, 2], stride: [3, 1]}                   # TF: empty (oneDNN)
          - {id: pl1-max-o1-s3, kernel_size: [5, 2], stride: [3, 1]}                   # oneDNN rejects...
          - {id: pl1-max-o1-s3-f64, kernel_size: [5, 2], stride: [3, 1], dtype: float64}   # ...Eigen: empty
    """,
    "conv.yaml": """
        op: conv2d
        defaults: {input: [1, 2, 4, 5], out_channels: 2, kernel_size: [5, 2], dilation: [2, 1],
                   padding: [1, 0, 0, 0], expect: {error: true}}
        cases:
          - {id: f7-o4-s4, stride: [4, 1]}       # MindSpore: empty
          - {id: f7-o4-s3, stride: [3, 1]}       # MindSpore: "Resize failed"
    """,
}


def test_size_entries_reach_exactly_as_far_as_the_truncating_divisions(raw):
    report = raw(*NEAR_MISSES)
    verdicts = {(r["backend"], r["case"]): r["verdict"] for r in report["results"]}
    assert [verdicts["tf.nn", c] for c in ("pl1-avg-o4-s3", "pl1-avg-o6-s3", "pl1-max-o4-s3", "pl1-max-o1-s3",
                                           "pl1-max-o1-s3-f64")] == ["missing_error", "pass", "missing_error",
                                                                     "pass", "missing_error"], verdicts
    assert [verdicts["mindspore.nn", c] for c in ("pl4-avg-o3-s3", "pl4-avg-o4-s3", "pl4-avg-o5-s3", "f7-o4-s4",
                                                  "f7-o4-s3")] == ["missing_error"] * 2 + ["pass", "missing_error",
                                                                                          "pass"], verdicts
    matched = exact_matches(report, divergences.load(SHIPPED))
    assert matched == {"PL1-tf-avg-valid-window-larger-than-input": {"pl1-avg-o4-s3"},
                       "PL1-tf-max-window-larger-than-input": {"pl1-max-o4-s3", "pl1-max-o1-s3-f64"},
                       # tf.keras pools through tf.nn in NHWC: the same sizes, the same answers
                       "PL1-keras-avg-valid-window-larger-than-input": {"pl1-avg-o4-s3"},
                       "PL1-keras-max-window-larger-than-input": {"pl1-max-o4-s3", "pl1-max-o1-s3-f64"},
                       "PL4-mindspore-avg-ceil-window-larger-than-input": {"pl4-avg-o3-s3", "pl4-avg-o4-s3"},
                       "F7-mindspore-conv2d-dilated-window-past-input": {"f7-o4-s4"},
                       "F6-tf-conv2d-zero-size-output": {"f7-o4-s4", "f7-o4-s3"}}, matched


# J4 (XLA's conv operand swapper on the convolution of dy that gives dx): the trigger and the call it was found
# in, then one change at a time from the trigger, each of which computes. Rows: k 2, s 2, pad before 1, the last
# window on the last row (the "group" axis); columns: a kernel of 3 over W_out 2 (what makes XLA swap).
J4_CASES = """
    op: conv2d
    defaults: {input: [1, 1, 4, 4], out_channels: 2, kernel_size: [2, 3], stride: [2, 1], padding: [1, 1, 0, 0],
               mode: backward}
    cases:
      - {id: j4, bias: true}
      - {id: j4-pad-after-2-nhwc-f64, padding: [1, 2, 0, 0], layout: NHWC, input: [1, 4, 4, 1], dtype: float64}
      - {id: j4-fuzz-conv2d-2-17, input: [2, 7, 8, 4], layout: NHWC, out_channels: 3, kernel_size: [5, 2],
         stride: 2, dilation: [2, 1], padding: [2, 0, 1, 2], bias: true}
      - {id: near-stride-1, stride: 1}
      - {id: near-pad-before-0, padding: [0, 1, 0, 0]}
      - {id: near-pad-after-3, padding: [1, 3, 0, 0]}
      - {id: near-odd-rows, input: [1, 1, 5, 4]}
      - {id: near-two-dy-rows, input: [1, 1, 2, 4]}        # the kept window of 2 fits dy's 2 rows
      - {id: near-kernel-fits-dy, input: [1, 1, 4, 5]}     # k_w 3 = W_out 3: no swap
      - {id: near-full-window, input: [1, 1, 4, 3]}        # W_out 1, the window spans the input: XLA counts 3
      - {id: near-groups, input: [1, 2, 4, 4], groups: 2}  # grouped convolutions are never swapped
      - {id: near-kernel-3-stride-3, input: [1, 1, 6, 4], kernel_size: [3, 3], stride: [3, 1], padding: [2, 2, 0, 0]}
"""


@pytest.mark.skipif(envs.uv_binary() is None, reason="uv is not installed (make setup installs it)")
def test_the_xla_input_gradient_entry_matches_exactly_the_calls_that_abort(tmp_path):
    cases = write(tmp_path / "j4.yaml", J4_CASES)
    empty = write(tmp_path / "empty.yaml", "divergences: []\n")
    out = tmp_path / "raw"
    conform("run", cases, "--backends", "jax.lax", "--registry", empty, "--out", out, "--quiet")
    report = json.loads((out / "report.json").read_text())
    verdicts = {}
    for r in report["results"]:
        verdicts.setdefault(r["case"], set()).add(r["verdict"])
    trigger = {c for c in verdicts if c.startswith("j4")}
    # JAX behaves as the cases say (so the test checks the entry, not a stale assumption)
    assert {c: v for c, v in verdicts.items() if c in trigger} == {c: {"crash"} for c in trigger}, verdicts
    assert {c: v for c, v in verdicts.items() if c not in trigger} == {c: {"pass"} for c in verdicts
                                                                       if c not in trigger}, verdicts
    matched = exact_matches(report, divergences.load(SHIPPED))
    assert matched == {"J4-xla-conv2d-input-gradient-abort": trigger}, matched
