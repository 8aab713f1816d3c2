"""``conform hunt`` (issue 17) on the real frameworks: the shrinker, grouping, the proposed entries,
determinism and ``--resume``.

The hunts here pose chosen calls (``HuntOptions.seeds``, exploration off) so that they take a few
rounds: every round starts the backend's worker, which costs seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness import divergences, envs
from harness.cases import load_suite
from harness.cli import main
from harness.hunt import explain, output, space
from harness.hunt.engine import Hunt, HuntOptions
from harness.outdir import claim
from harness.runner import RunOptions, run

ROOT = Path(__file__).resolve().parent.parent
OP = "conv2d_transpose"
#: docs/findings.md F1's minimal case: input [2, 4, 7, 9], k=1, s=2, 'valid'.
F1_START = {"input": [2, 4, 7, 9], "out_channels": 3, "kernel_size": 1, "stride": 2, "padding": "valid"}
#: F3 (crops that remove the whole output, 0 rows) and F4 (filters of depth 0 with 'same') on tf.nn, not minimal.
ONES = {"x": "ones", "w": "ones"}
F3_START = {"input": [1, 2, 2, 3], "out_channels": 2, "kernel_size": 3, "padding": [2, 2, 0, 0], "data": ONES}
F4_START = {"input": [1, 2, 3, 2], "out_channels": 1, "kernel_size": 3, "groups": 2, "padding": "same", "data": ONES}


def _available(backend: str) -> bool:
    return envs.availability(backend)[0]


def _hunt(out: Path, backends: list[str], seeds: list[dict], **options) -> tuple[Hunt, list[int]]:
    """A hunt of the ``seeds`` only; also the numbers of the rounds it ran (not replayed)."""
    executed: list[int] = []

    def on_event(kind, info):
        if kind == "round":
            executed.append(info["round"])
    options = {"probe_rounds": 1, **options}
    hunt = Hunt(HuntOptions(op=OP, backends=backends, out=out, seeds=seeds, explore=False, on_event=on_event,
                            **options)).run()
    return hunt, executed


def _elements(fields: dict) -> int:
    return math.prod(fields["input"])


@pytest.fixture(scope="module")
def f1_hunt(tmp_path_factory):
    if not _available("mindspore.nn"):
        pytest.skip("mindspore.nn is not available")
    return _hunt(tmp_path_factory.mktemp("f1"), ["mindspore.nn"], [F1_START], probe_rounds=0)[0]


@pytest.fixture(scope="module")
def tf_hunt(tmp_path_factory):
    if not _available("tf.nn"):
        pytest.skip("tf.nn is not available")
    out = tmp_path_factory.mktemp("tf")
    return _hunt(out, ["tf.nn"], [F3_START, F4_START])


def test_the_shrinker_takes_f1_below_the_findings_case_and_it_still_fails_as_f1(f1_hunt):
    (group,) = f1_hunt.groups
    minimal, start = group.candidate.current, space.settle(OP, F1_START)
    assert group.candidate.verdict == "shape_mismatch" and group.candidate.record["verdict"] == "shape_mismatch"
    assert _elements(minimal) < _elements(start) and space.cost(OP, minimal) < space.cost(OP, start)
    assert minimal["kernel_size"] == [1, 1] and minimal["padding"] == "valid"
    # The same divergence: the project's F1 entry explains the minimal call's result, and its rows are H·s.
    registry = divergences.load(ROOT / "cases" / "known_divergences.yaml")
    record = {**group.candidate.record, "op": OP, "gradient": None, "dtype": minimal["dtype"],
              "data": minimal["data"], "params": {k: v for k, v in minimal.items() if k not in ("dtype", "data")}}
    assert registry.match(record, f1_hunt.versions["mindspore.nn"]).entry.id.startswith("F1-")
    off = [axis for axis in (2, 3) if record["actual_shape"][axis] != record["expected_shape"][axis]]
    assert off and all(record["actual_shape"][a] == minimal["input"][a] * minimal["stride"][a - 2] for a in off)
    # The conditions are F1's: a valid call, 'valid', the kernel below the stride.
    when = group.entry["when"]
    assert when["valid_call"] is True and when["padding_form"] == "valid" and when["kernel_below_stride"] is True


def test_grouping_separates_two_divergences_of_one_backend(tf_hunt, tmp_path):
    hunt, _ = tf_hunt
    assert len(hunt.groups) == 2, [g.signature for g in hunt.groups]
    by_blame = {g.candidate.kind: g for g in hunt.groups}
    assert set(by_blame) == {"padding", "groups"}     # F3: crops remove the output; F4: filters of depth 0
    f3, f4 = by_blame["padding"], by_blame["groups"]
    assert f3.signature != f4.signature
    assert _elements(f3.candidate.current) <= 1 * 4 * 2 * 4       # findings.md F3: input [1, 4, 2, 4]
    assert f3.candidate.current["out_channels"] == 1 and 0 in explain.values_of(OP, f3.candidate.current)["out_size"]
    assert explain.values_of(OP, f4.candidate.current)["out_channels_per_group"] == 0
    # Neither group's entry explains the other's minimal call.
    for group, other in ((f3, f4), (f4, f3)):
        values = explain.values_of(OP, other.candidate.current)
        assert not explain.selector(group.entry).when.holds(values)
    # The files: a runnable case file, a loadable registry file, a draft naming the backend.
    with claim(tmp_path / "out", ("hunt.json",)) as outdir:
        for group in hunt.groups:
            output.write_group(outdir, hunt, group)
        output.write_summary(outdir, hunt)
    out = tmp_path / "out"
    assert len(load_suite([str(out)])) == 2
    for group in hunt.groups:
        assert divergences.load(out / f"{group.signature}.registry.yaml").entries[0].backend == "tf.nn"
        assert "`tf.nn` gives `missing_error`" in (out / f"{group.signature}.md").read_text(encoding="utf-8")
    summary = json.loads((out / "hunt.json").read_text(encoding="utf-8"))
    assert [g["signature"] for g in summary["groups"]] == [g.signature for g in hunt.groups]


def test_proposed_entries_xfail_their_minimal_cases_and_nothing_outside_their_divergence(tf_hunt, tmp_path):
    """Pasted into a registry, the entries make the minimal cases xfail; on cases/conv2d_transpose (tf.nn) they
    match only results that fail with their verdict (no xpass) and that the project registry explains too."""
    hunt, _ = tf_hunt
    registry_file = tmp_path / "proposed.yaml"
    registry_file.write_text("divergences:\n" + "".join(
        output._dump([g.entry]) for g in hunt.groups), encoding="utf-8")
    proposed = divergences.load(registry_file)
    minimal = tmp_path / "minimal"
    minimal.mkdir()
    for group in hunt.groups:
        (minimal / f"{group.signature}.yaml").write_text(output.case_file(hunt, group), encoding="utf-8")
    cases = load_suite([str(ROOT / "cases" / OP), str(minimal)])
    result = run(cases, RunOptions(backends=["tf.nn"], out=tmp_path / "run", registry=proposed, check_stale=False))
    project = divergences.load(ROOT / "cases" / "known_divergences.yaml")
    by_case = {r["case"]: r for r in result.results}
    for group in hunt.groups:
        assert by_case[f"hunt-{group.signature}"]["verdict"] == "xfail"
    matched = [r for r in result.results if r.get("divergence")]
    assert matched and all(r["verdict"] == "xfail" for r in matched), [r["case"] for r in matched
                                                                        if r["verdict"] != "xfail"]
    for record in matched:
        if not record["case"].startswith("hunt-"):
            raw = {**record, "verdict": record["original_verdict"]}
            assert project.match(raw, record["backend_version"]) is not None, record["case"]


def test_resume_replays_the_journal_and_arrives_at_the_same_groups(tf_hunt, tmp_path):
    """Stopped after its first round and resumed, a hunt runs only the rounds after it and ends as the straight
    hunt did: the same rounds (journal digests), groups, minimal calls and entries (deterministic for a seed)."""
    straight, straight_rounds = tf_hunt
    first, executed = _hunt(tmp_path, ["tf.nn"], [F3_START, F4_START], budget_cases=2)
    assert executed == [0] and first.rounds == 1 and not first.groups
    resumed, executed = _hunt(tmp_path, ["tf.nn"], [F3_START, F4_START], resume=True)
    assert executed == straight_rounds[1:]
    assert [(g.signature, g.entry, g.candidate.current) for g in resumed.groups] == \
           [(g.signature, g.entry, g.candidate.current) for g in straight.groups]
    digests = [json.loads(line).get("digest") for line in (tmp_path / "hunt-journal.jsonl").read_text().splitlines()]
    assert len(digests) == straight.rounds + 1


def test_a_resume_with_other_settings_is_refused(tmp_path):
    _hunt(tmp_path, ["numpy"], [F1_START])
    with pytest.raises(Exception, match="another hunt"):
        _hunt(tmp_path, ["numpy"], [F1_START], seed=5, resume=True)


def test_exploration_is_deterministic_and_poses_valid_and_invalid_calls():
    calls = [space.explore(OP, 3, i) for i in range(300)]
    assert calls == [space.explore(OP, 3, i) for i in range(300)]
    invalid = sum("expect" in c for c in calls)
    assert 0.05 * len(calls) < invalid < 0.5 * len(calls)
    forms = {c["padding"] if isinstance(c["padding"], str) else "explicit" for c in calls}
    assert forms == {"same", "same_lower", "valid", "explicit"}
    assert {c["dtype"] for c in calls} == {"float16", "bfloat16", "float32", "float64"}
    assert {c["layout"] for c in calls} == {"NCHW", "NHWC"}


def test_shrink_moves_are_posable_and_smaller():
    for i in range(40):
        call = space.explore(OP, 11, i)
        moves = space.shrink_moves(OP, call)
        assert moves or space.cost(OP, call) < 8
        for move in moves:
            assert space.settle(OP, move) == move and space.cost(OP, move) < space.cost(OP, call)


@pytest.mark.parametrize("argv, message", [
    (["--budget", "5x"], "not a budget"),
    (["--budget", "0"], "whole number"),
    (["--backends", "nope"], "unknown backend"),
    (["--ignore-registry", "--registry", "cases/known_divergences.yaml"], "exclude each other"),
])
def test_invalid_hunt_arguments_exit_2_with_a_message(argv, message, tmp_path, capsys):
    try:
        code = main(["hunt", "--op", OP, "--out", str(tmp_path / "h"), *argv])
    except SystemExit as exc:   # argparse's own errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_conditions_prefer_derived_flags_and_separate_every_passing_neighbour():
    """F1's passing neighbours (stride 1, explicit padding, Keras' sizes, an output_shape) are separated by the
    registry's own F1 conditions, not by numbers fitted to the few calls seen."""
    fail = [space.settle(OP, F1_START), space.settle(OP, {**F1_START, "input": [1, 1, 1, 1], "out_channels": 1})]
    passing = [space.settle(OP, {**F1_START, **change}) for change in (
        {"stride": 1}, {"padding": 0}, {"size_rule": "keras"}, {"output_shape": [14, 18]},
        {"input": [1, 1, 8, 8], "stride": [2, 1], "kernel_size": [3, 1]})]
    picked, unseparated = explain.separate(OP, [explain.values_of(OP, f) for f in fail],
                                           [explain.values_of(OP, f) for f in passing], [])
    when = explain.when_of(picked)
    assert unseparated == 0 and when["valid_call"] is True
    assert when["kernel_below_stride"] is True and when["padding_form"] == "valid"
    assert {"size_rule", "output_size_is_default"} & set(when)
    assert not {"input", "in_size", "out_channels", "batch"} & set(when)
    selector = explain.selector(explain.entry(OP, "mindspore.nn", "shape_mismatch", picked, "s", "a reason text"))
    assert all(selector.when.holds(explain.values_of(OP, f)) for f in fail)
    assert not any(selector.when.holds(explain.values_of(OP, f)) for f in passing)
