"""``conform hunt``: search an operator's parameter space for divergences no registry entry explains.

Note [Hunting]
--------------
A hunt poses calls, keeps every failing result that no registry entry
explains, shrinks each to a minimal call that still fails the same way,
groups the minimal calls by the conditions that separate them from passing
calls, and writes per group a runnable case, a proposed registry entry and a
finding draft (``harness.hunt.output``). The modules:

* ``space``: the parameter space from the ``OpSpec`` alone: random calls
  (the operator's fuzz strategy, 40 % of them mutated: the padding forms and
  size rules the strategy does not draw, and calls the semantics rejects,
  posed as ``expect: {error: true}`` so a backend that accepts one is
  ``missing_error``), one-field simplifications and a size (``cost``);
* ``candidate``: one failure being shrunk, then probed;
* ``explain``: the kind of a failure and the conditions, in the registry's
  own ``when`` language;
* ``engine``: the rounds; ``journal``: ``--resume``; ``command``: the CLI.

**Rounds, not one call at a time.** Every evaluation goes through
``runner.run`` (the workers, the oracle, the judge), and ``run`` starts its
workers each time it is called: measured on this 2-core machine, six
surfaces take ~14 s to start, and 60 more cases add ~1.5 s. So a round is
one ``run`` call holding everything that can be asked at once: each
candidate's variants or probes (a case restricted to its backend with
``backends:``, so no other worker runs it) and fresh exploration calls on
every backend (160 while nothing is being shrunk, 40 while something is).
Up to 9 candidates shrink side by side (16 variants each a round), one per
(backend, verdict, kind) at a time, the backends with the fewest candidates
first, the others queued (the group the first one forms usually explains
them; an active candidate a new group explains is dropped).

**Why not hypothesis' engine.** It calls a test with one example at a time
and its shrinker is sequential and adaptive: each step would be a ``run``
with its worker start-up, seconds, where a round asks for 30 variants of
6 candidates at once. Its shrinker also discards the examples it rejects;
here those are the data: the *passing neighbours* the conditions are
separated from. And the space is the operator's own declaration (its fuzz
strategy and ``Params``), which ``conform fuzz`` and ``make quiet`` already
use, rather than a second description as strategies. So the hunt adds no
run-time dependency (hypothesis stays a test dependency).

**Shrinking** (``candidate``): greedy over one-field moves (a field to its
default, numbers toward their default or 1, a padding form to another,
``output_shape`` dropped, NHWC to NCHW, float32, fills toward ``ones``,
seed 0); the smallest variant that keeps the failure wins, and the next
round also tries all of the round's successful moves at once. A variant
keeps the failure when the same backend gives the same verdict and the same
``failure_kind``: for a shape mismatch which way the spatial sizes are off,
for a value mismatch whether the worst element is NaN/Inf, 0 or another
wrong value, for a missing error the rule the semantics blames, for an
unexpected error the exception type (``adapter``: a conform bug).

**Conditions** (``explain``): atoms ``name: condition`` on the values a
registry ``when`` tests (parameters, ``dtype``, the operator's ``DERIVED``),
each true for every call of the shrink chain; a greedy weighted set cover
picks atoms until no observed passing call of the backend meets them all
(the shrinker's rejected variants, probes, exploration), derived booleans
preferred to raw numbers; redundant atoms are then dropped, and
``valid_call`` is always kept (a divergence on calls the semantics accepts
and one on calls it rejects are different findings). The probes then test
them: a mutation of each field of the minimal call, and stream calls that
meet every condition but one (is it needed?) or all (does every such call
diverge?); the conditions are separated again until they stop changing.
The result is a conjunction: a divergence with two facets (F2: zeros where
the crop held values, and zeros instead of the bias) becomes two groups.
``unseparated_passing`` in hunt.json counts passing calls the conditions do
not exclude (0: exact on everything observed).

**Against the registry**: a failing result a registry entry explains with
its verdict is counted (``explained``), not hunted; each group's proposed
entry joins the registry for the rest of the hunt, so a divergence is
grouped once. ``--ignore-registry`` starts with none.

**Determinism and budget.** What a round holds depends only on the seed,
the round number and what came back before (the stream's call ``i`` is
seeded by ``(op, seed, i)``), so a hunt is reproducible for a seed and
framework versions, and ``--resume`` replays the journal's rounds instead
of running them. A time budget counts the rounds' durations (replayed ones
included); a round that starts before it runs out finishes. A case budget
truncates the last round.
"""
