"""conform: a cross-framework conformance harness for deep-learning operators.

Where each concern lives:

- ``harness.yamlsrc``      YAML loading that remembers the line of every value
- ``harness.cases``        the case model: case files -> validated ``Case`` objects
- ``harness.ops``          one package per operator (semantics, oracle, magnitude, operands, coverage,
                           fuzz, error inputs, mapping rows), each exposing one ``SPEC``; ``ops.OPS``
- ``harness.data``         input fills and dtype rounding
- ``harness.backends``     one adapter module per framework API surface; ``program``: the native call as data
- ``harness.worker``       the worker processes that host the adapters
- ``harness.runner``       plan (case x backend) and execution
- ``harness.journal``      results.jsonl, and what ``--resume`` keeps of it
- ``harness.globs``        case-id globs (``-k``, the known-divergence registry)
- ``harness.compare``      tolerance model, metrics and verdicts
- ``harness.report``       report.json, html, junit, summary.md, reproducers, publishing them as one set
- ``harness.outdir``       the --out folder: what conform may write there, its manifest and lock
- ``harness.cli``          the ``conform`` command line
"""

__version__ = "0.1.0"
