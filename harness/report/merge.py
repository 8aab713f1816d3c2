"""``conform merge OUT_DIRS... --out DIR``: the shards of one run joined into the report set of that run.

Each ``conform run --shard K/N`` writes a ``suite`` record into its
report.json (``harness.shards``): the fingerprint of the selected suite
before splitting, the registry's sha256, ``[K, N]``, the positions of its
cases and claims in the whole suite and the registry entries it matched
nothing with. Merging checks the shards against each other before anything
is written, and refuses (``MergeError``, exit 2, naming both folders and what
differs) shards of different suites, shard counts, registries, backends,
framework versions or ``--strict``; the same shard twice; two shards holding
results for the same case; and absent shards unless ``--allow-partial`` (the
merged report is then ``incomplete``: it never passes the gate).

The merged report is the one a single run would have written: results (one
per case, backend and gradient) and claims in the suite's order, the summary
and gate recomputed, and the stale registry entries decided from all shards
together: an entry is stale when it matched nothing in *any* shard (each
shard's ``unmatched``), is of a kind (forward or gradient) some result has,
and the shards cover the whole suite its registry was written for. Every
per-case value (verdicts, ``agrees_with``, ``spread``) was computed within one
shard, where the case ran whole. The reproducers are copied from each shard's
``repro/`` into the new report generation, so the output folder keeps its
rules (``harness.outdir``, ``harness.report.publish``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.outdir import check_writable, claim
from harness.report import claims as claim_reports
from harness.report.diff import ReportError, load
from harness.report.gradients import rank, result_key
from harness.report.json_report import gate_passes, summarize
from harness.report.publish import Generation, publish_reports

#: Top-level names `conform merge` writes in --out (``harness.outdir`` owns the rules).
WRITES = ("report.json", "report.html", "junit.xml", "summary.md", "repro", ".conform")


class MergeError(Exception):
    """Shards that cannot be merged (a usage error, exit 2)."""


@dataclass
class Shard:
    folder: Path
    report: dict

    @property
    def suite(self) -> dict:
        return self.report["suite"]

    @property
    def k(self) -> int:
        return self.suite["shard"][0]

    @property
    def n(self) -> int:
        return self.suite["shard"][1]

    def __str__(self) -> str:
        return f"{self.folder} (shard {self.k}/{self.n})"


def _suite_problem(suite: Any) -> str:
    """What is wrong with a report's ``suite`` record for merging ('' if nothing)."""
    if not isinstance(suite, dict):
        return "no `suite` record (written by a conform without shard support)"
    shard = suite.get("shard")
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(v) is int for v in shard)
            and 1 <= shard[0] <= shard[1]):
        return "not a shard: it was run without --shard K/N"
    for name, kind in (("fingerprint", str), ("case_positions", dict), ("claim_positions", dict),
                       ("unmatched", list), ("registry", dict)):
        if not isinstance(suite.get(name), kind):
            return f"suite.{name}: missing or not a {kind.__name__}"
    if not all(type(v) is int for v in [*suite["case_positions"].values(), *suite["claim_positions"].values()]):
        return "suite.case_positions: positions must be integers"
    return ""


def load_shard(folder: Path) -> Shard:
    path = Path(folder) / "report.json"
    if not path.exists():
        raise MergeError(f"{folder}: no report.json: not the --out folder of a `conform run --shard K/N`")
    try:
        report = load(path)
    except ReportError as exc:
        raise MergeError(str(exc)) from None
    problem = _suite_problem(report.get("suite"))
    if problem:
        raise MergeError(f"{path}: {problem}")
    return Shard(Path(folder), report)


def _versions(shard: Shard) -> dict[str, tuple]:
    backends = shard.report.get("environment", {}).get("backends") or {}
    return {b: (info.get("version"), bool(info.get("available"))) for b, info in backends.items()
            if isinstance(info, dict)}


def _describe_version(version: tuple) -> str:
    return f"{version[0] or 'no version'}{'' if version[1] else ' (not available)'}"


def _difference(a: Shard, b: Shard) -> str:
    """What makes ``a`` and ``b`` shards of different runs ('' if nothing)."""
    sa, sb = a.suite, b.suite
    if a.n != b.n:
        return f"they split into different shard counts ({a.n} and {b.n})"
    if sa["fingerprint"] != sb["fingerprint"]:
        said = [f"{what}: {sa.get(key)!r} and {sb.get(key)!r}" for key, what in
                (("cases", "cases"), ("claims", "claims"), ("mode", "--mode")) if sa.get(key) != sb.get(key)]
        return ("they are shards of different suites (suite fingerprints "
                f"{sa['fingerprint'][:12]} and {sb['fingerprint'][:12]}"
                + (f"; {', '.join(said)}" if said else "; same counts, different case ids or content") + ")")
    ra, rb = sa["registry"], sb["registry"]
    if ra.get("sha256") != rb.get("sha256"):
        return (f"they used different registries ({ra.get('file') or 'none'} sha256 {str(ra.get('sha256'))[:12]} "
                f"and {rb.get('file') or 'none'} sha256 {str(rb.get('sha256'))[:12]})")
    va, vb = _versions(a), _versions(b)
    if list(va) != list(vb):
        return f"they ran different backends ({', '.join(va) or 'none'} and {', '.join(vb) or 'none'})"
    for backend in va:
        if va[backend] != vb[backend]:
            return (f"they ran different framework versions ({backend} {_describe_version(va[backend])} and "
                    f"{_describe_version(vb[backend])})")
    strict_a, strict_b = a.report.get("gate", {}).get("strict"), b.report.get("gate", {}).get("strict")
    if bool(strict_a) != bool(strict_b):
        return f"one ran with --strict and the other without (strict: {bool(strict_a)} and {bool(strict_b)})"
    return ""


def check(shards: list[Shard], allow_partial: bool) -> list[int]:
    """Refuse shards that are not one run's; the absent shard numbers (allowed with ``allow_partial``)."""
    first = shards[0]
    for other in shards[1:]:
        differs = _difference(first, other)
        if differs:
            raise MergeError(f"cannot merge {first} and {other}: {differs}")
    seen: dict[int, Shard] = {}
    owner: dict[tuple, Shard] = {}
    for shard in shards:
        if shard.k in seen:
            raise MergeError(f"{seen[shard.k].folder} and {shard.folder} are both shard {shard.k}/{shard.n}")
        seen[shard.k] = shard
        for kind in ("case", "claim"):
            for item in shard.suite[f"{kind}_positions"]:
                if (kind, item) in owner:
                    raise MergeError(f"{owner[kind, item]} and {shard} overlap: both hold {kind} {item}")
                owner[kind, item] = shard
    for shard in shards:   # the positions say which cases a shard planned; its results must stay within them
        planned = shard.suite["case_positions"]
        stray = next((r["case"] for r in shard.report["results"] if r["case"] not in planned), None)
        if stray is not None:
            raise MergeError(f"{shard}: holds results for case {stray}, which its suite record does not plan")
    missing = [k for k in range(1, first.n + 1) if k not in seen]
    if missing and not allow_partial:
        have = ", ".join(str(k) for k in sorted(seen))
        raise MergeError(f"shard {', '.join(str(k) for k in missing)} of {first.n} absent (given: {have}); "
                         "pass every shard's folder, or --allow-partial to merge these (marked incomplete)")
    return missing


def _stale(shards: list[Shard], results: list[dict]) -> list[dict]:
    """Registry entries that matched nothing in any shard, of a kind some result has (module docstring)."""
    unmatched = [{e.get("id") for e in s.suite["unmatched"] if isinstance(e, dict)} for s in shards]
    everywhere = set.intersection(*unmatched)
    kinds = {"gradient" if r.get("gradient") else "forward" for r in results}
    return [{k: v for k, v in entry.items() if k != "kind"} for entry in shards[0].suite["unmatched"]
            if isinstance(entry, dict) and entry.get("id") in everywhere and entry.get("kind") in kinds]


def merge(shards: list[Shard], missing: list[int]) -> dict:
    """The report of the whole run the shards are parts of."""
    shards = sorted(shards, key=lambda s: s.k)
    first = shards[0].report
    case_pos = {c: p for s in shards for c, p in s.suite["case_positions"].items()}
    claim_pos = {c: p for s in shards for c, p in s.suite["claim_positions"].items()}
    backend_order = {b: i for i, b in enumerate(_versions(shards[0]))}
    results = sorted((r for s in shards for r in s.report["results"]),
                     key=lambda r: (case_pos[r["case"]], rank(result_key(r)[2]),
                                    backend_order.get(r["backend"], len(backend_order)), r["backend"]))
    claims = sorted((c for s in shards for c in claim_reports.claims_of(s.report)),
                    key=lambda c: claim_pos.get(c.get("id"), len(claim_pos)))
    incomplete = bool(missing) or any(s.report.get("incomplete") for s in shards)
    whole = not missing and all(s.suite.get("check_stale") for s in shards)
    stale = _stale(shards, results) if whole and not incomplete else []
    strict = bool(first.get("gate", {}).get("strict"))
    report = {key: value for key, value in first.items() if key not in ("claims", "claims_summary", "timing")}
    report.update({
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # The shards ran side by side: the run took as long as the slowest.
        "duration_s": max(s.report.get("duration_s") or 0 for s in shards),
        "incomplete": incomplete,
        "gate": {"passed": not incomplete and gate_passes(results, strict, stale)
                 and claim_reports.gate_passes(claims), "strict": strict},
        "summary": summarize(results),
        "stale_divergences": stale,
        "results": results,
        "suite": {**{k: v for k, v in shards[0].suite.items() if k not in
                     ("shard", "case_positions", "claim_positions", "unmatched", "estimated_s")},
                  "shard": None, "missing_shards": missing,
                  "merged": [{"shard": [s.k, s.n], "folder": str(s.folder), "created": s.report.get("created"),
                              "duration_s": s.report.get("duration_s"), "timing": s.report.get("timing"),
                              "estimated_s": s.suite.get("estimated_s")} for s in shards]},
    })
    if claims:
        report["claims_summary"] = claim_reports.summary(claims)
        report["claims"] = claims
    return report


def _repro_folder(rel: Any) -> str:
    """The reproducer folder a record's ``repro``/``heatmap`` path names, or '' if it is not a plain
    ``repro/...`` path (report files are user input: no absolute paths, no ``..``)."""
    if not isinstance(rel, str):
        return ""
    parts = rel.split("/")
    if len(parts) < 3 or parts[0] != "repro" or any(p in ("", ".", "..") for p in parts):
        return ""
    return "/".join(parts[:-1])


def copy_reproducers(shards: list[Shard], into: Path) -> None:
    """Each shard's reproducer folders its records name, copied into the generation ``into``; a record whose
    reproducer is not there loses the link (as ``--resume`` does)."""
    for shard in shards:
        records = [*shard.report["results"], *claim_reports.claims_of(shard.report)]
        for record in records:
            folder = _repro_folder(record.get("repro"))
            source = shard.folder / folder
            if not folder or not source.is_dir():
                record.pop("repro", None)
                record.pop("heatmap", None)
                continue
            target = into / folder
            target.mkdir(parents=True, exist_ok=True)
            for item in source.iterdir():
                if item.is_file() and not (target / item.name).exists():
                    shutil.copy2(item, target / item.name)


def write_merged(folders: list[Path], out: Path, allow_partial: bool, warn=print) -> dict:
    """Merge the shards in ``folders`` into ``out``'s report set (published as one); the merged report.

    Raises ``MergeError`` before anything is written when the shards are not one run's; ``OutError`` and
    ``PublishError`` (``--out`` refused, reports not written) as ``conform run`` does.
    """
    shards = [load_shard(folder) for folder in folders]
    missing = check(shards, allow_partial)
    if any(Path(folder).resolve() == Path(out).resolve() for folder in folders):
        raise MergeError(f"--out {out} is one of the shards: merge into a folder of its own")
    check_writable(out)
    with claim(out, WRITES), Generation(out) as gen:
        copy_reproducers(shards, gen.path)
        report = merge(shards, missing)
        for warning in publish_reports(gen, report, gen.path, gen.path):
            warn(warning)
    if missing:
        warn(f"shard {', '.join(map(str, missing))} of {shards[0].n} absent: the merged report is incomplete")
    return report
