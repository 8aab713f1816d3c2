"""What a hunt writes into its folder: per group a minimal case, a proposed entry and a finding draft; hunt.json.

Per group (``<signature>``, ``harness.hunt.explain.signature``):

* ``<signature>.yaml``: the minimal case, an ordinary case file (``conform run`` runs it; its failing
  backend fails, the others show what they answer);
* ``<signature>.registry.yaml``: the proposed registry entry (``divergences:`` with one entry; paste it
  into ``cases/known_divergences.yaml`` with a real id and link; ``harness.discovery`` does not take
  ``*.registry.yaml`` for a case file);
* ``<signature>.md``: a finding draft in the style of ``docs/findings.md``.

``hunt.json`` (``conform.hunt/1``) sums the hunt up: settings, versions, rounds, cases and results
run, time, the groups (time to each, its files, its conditions), candidates still being shrunk when
the budget ran out, and how many failures each registry entry or group explained.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from harness import __version__
from harness.hunt import explain, space
from harness.report import atomic_write

SCHEMA = "conform.hunt/1"


def group_files(signature: str) -> list[str]:
    return [f"{signature}.yaml", f"{signature}.registry.yaml", f"{signature}.md"]


def _dump(value) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)


def case_file(hunt, group) -> str:
    cand, o = group.candidate, hunt.options
    fields = space.readable(o.op, cand.current)
    case = {"id": f"hunt-{group.signature}", "source": f"conform hunt --op {o.op} --seed {o.seed}",
            "description": f"{cand.backend} {cand.verdict}: {explain.in_words(cand.picked)}"[:900], **fields}
    header = (f"# Minimal case of hunt group {group.signature}: {cand.backend} gives {cand.verdict}.\n"
              f"# Reproduce: conform run {group.signature}.yaml --backends {cand.backend},numpy --out OUT\n")
    return header + _dump({"op": o.op, "cases": [case]})


def registry_file(group) -> str:
    header = ("# Proposed by conform hunt. Before pasting it into cases/known_divergences.yaml: give the id a real\n"
              "# number (F, PL, J, TN, MO or OX), write the cause into reason and link the finding.\n")
    return header + _dump({"divergences": [group.entry]})


def _shape(record: dict) -> str:
    error = record.get("error") or {}
    if record.get("actual_shape") is not None:
        return f"shape {record['actual_shape']}"
    if error:
        return f"rejects ({error.get('type')}: {str(error.get('message', ''))[:160]})"
    return record.get("reason", "")[:160]


def _evidence_lines(hunt, group) -> list[str]:
    cand = group.candidate
    record = cand.record
    lines = [f"- Evidence: `{cand.backend}` gives **{record['verdict']}**: {record.get('reason', '')}."]
    metrics = record.get("metrics") or {}
    if record["verdict"] == "value_mismatch" and metrics:
        lines.append(f"  Max abs error {metrics.get('max_abs_err', 0):.3g}, {metrics.get('mismatch_fraction', 0):.1%}"
                     f" of elements outside the bound, `bound_ratio` {metrics.get('bound_ratio', 0):.3g}; "
                     "worst element "
                     f"at {metrics.get('worst_index')}: {metrics.get('worst_actual')} instead of "
                     f"{metrics.get('worst_expected')}.")
    if record["verdict"] == "shape_mismatch":
        lines.append(f"  Shape {record.get('actual_shape')} where the canonical semantics gives "
                     f"{record.get('expected_shape')}.")
    if record.get("native_call"):
        lines.append(f"  Native call: `{' '.join(str(record['native_call']).split())[:300]}`.")
    others = [(b, r) for b, r in sorted(cand.evidence.items()) if b != cand.backend]
    if others:
        lines.append("- The same call elsewhere: " + "; ".join(
            f"`{b}` {r['verdict']}" + (f" ({_shape(r)})" if r["verdict"] not in ("pass",) else "")
            for b, r in others) + ".")
    return lines


def _neighbours(hunt, group) -> list[str]:
    """Passing calls one field away from the minimal one: what the divergence needs."""
    cand = group.candidate
    out = []
    for call in cand.passing:
        changed = [n for n in call if n != "expect" and call[n] != cand.current.get(n)]
        if len(changed) == 1 and len(out) < 8:
            name = changed[0]
            out.append(f"`{name}` {json.dumps(cand.current[name])} → {json.dumps(call[name])}")
    return out


def draft(hunt, group) -> str:
    cand, o = group.candidate, hunt.options
    fields = space.readable(o.op, cand.current)
    agree = sorted(b for b, r in cand.evidence.items() if r["verdict"] == "pass")
    differ = sorted(b for b, r in cand.evidence.items() if r["verdict"] not in ("pass", "unsupported", "skipped"))
    neighbours = _neighbours(hunt, group)
    versions = ", ".join(f"{b} {v}" for b, v in sorted(hunt.versions.items()) if v)
    command = shlex.join(["conform", "hunt", "--op", o.op, "--seed", str(o.seed), "--backends", ",".join(o.backends)]
                         + (["--ignore-registry"] if o.settings.get("ignore_registry") else []))
    lines = [
        f"## F99 (draft from `conform hunt`: needs a real number) — {group.signature}",
        "",
        f"**`{cand.backend}` gives `{cand.verdict}` where {explain.in_words(cand.picked)}.**",
        "",
        f"- Minimal case: `{group.signature}.yaml` (`hunt-{group.signature}`): "
        + ", ".join(f"{k} {json.dumps(v)}" for k, v in fields.items() if k != "expect")
        + (" (a call the canonical semantics rejects: `expect: {error: true}`)" if "expect" in fields else "")
        + f"; operand elements {space.cost(o.op, cand.current):.0f} (the shrinker's size).",
        *_evidence_lines(hunt, group),
        "- Conditions (the proposed entry's `when`, `" + group.signature + ".registry.yaml`): every call of the shrink "
        f"chain ({len(cand.chain)} calls, from `{cand.origin_case}`) meets them; of the {len(cand.passing)} passing "
        f"neighbours and the backend's passing exploration calls, {cand.unseparated} meet them too"
        + (" (the conditions do not separate the divergence exactly: read them as a lead)." if cand.unseparated
           else "."),
    ]
    terms = explain.glossary(o.op, cand.picked)
    if terms:
        lines.append("- Terms: " + "; ".join(terms) + ".")
    if neighbours:
        lines.append("- Passing neighbours (one field changed from the minimal case): " + "; ".join(neighbours) + ".")
    lines += [
        "- Canonical side: the float64 oracle (the canonical semantics)"
        + (f", with {', '.join(f'`{b}`' for b in agree)}" if agree else "")
        + (f"; diverging on the same call: {', '.join(f'`{b}`' for b in differ)}" if differ else "") + ".",
        f"- Versions: {versions}; conform {__version__}.",
        f"- Reproducer: `conform run {group.signature}.yaml --backends {cand.backend},numpy --out OUT` (the failure); "
        f"`conform run {group.signature}.yaml --registry {group.signature}.registry.yaml --backends {cand.backend} "
        "--out OUT` (xfail with the proposed entry).",
        f"- Found by `{command}` after {group.found_s:.0f} s of hunting (round {group.found_round}, "
        f"{group.cases_before} cases run), shrunk in {cand.steps} steps; afterwards its entry explained "
        f"{hunt.explained.get(group.entry['id'], 0)} failing results. Draft: confirm the cause in the framework's "
        "source, then move this into docs/findings.md.",
        "",
    ]
    return "\n".join(lines)


def write_group(outdir, hunt, group) -> None:
    names = group_files(group.signature)
    outdir.own(names)
    texts = [case_file(hunt, group), registry_file(group), draft(hunt, group)]
    for name, text in zip(names, texts):
        atomic_write(outdir.path / name, text)


def summary(hunt) -> dict:
    o = hunt.options
    return {
        "schema": SCHEMA, "conform": __version__, "op": o.op, "seed": o.seed, "backends": o.backends,
        "versions": hunt.versions, **o.settings,
        "complete": not hunt.interrupted, "rounds": hunt.rounds, "cases_run": hunt.cases_run,
        "results": hunt.results, "duration_s": round(hunt.elapsed_s, 1),
        "groups": [{
            "signature": g.signature, "backend": g.candidate.backend, "verdict": g.candidate.verdict,
            "kind": g.candidate.kind, "time_to_group_s": g.found_s, "round": g.found_round,
            "cases_run_before": g.cases_before, "files": group_files(g.signature), "entry": g.entry,
            "minimal": space.readable(o.op, g.candidate.current),
            "size": round(space.cost(o.op, g.candidate.current), 1),
            "shrink_steps": g.candidate.steps, "origin": g.candidate.origin_case,
            "unseparated_passing": g.candidate.unseparated, "merged_candidates": g.instances,
            "explained_failures": hunt.explained.get(g.entry["id"], 0),
            "evidence": {b: r["verdict"] for b, r in sorted(g.candidate.evidence.items())},
        } for g in hunt.groups],
        "shrinking": [{"backend": c.backend, "verdict": c.verdict, "kind": c.kind, "phase": c.phase,
                       "steps": c.steps, "current": space.readable(o.op, c.current)} for c in hunt.active],
        "explained": dict(sorted(hunt.explained.items())),
    }


def write_summary(outdir, hunt) -> Path:
    path = outdir.path / "hunt.json"
    atomic_write(path, json.dumps(summary(hunt), indent=1) + "\n")
    return path
