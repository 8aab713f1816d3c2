"""The repository's own tests: their YAML files are test data, never case files for the conform pytest plugin
(``harness/pytest_plugin.py``), even when pytest is given ``tests/`` explicitly.

Three rules for pytest-xdist (``make test``: two workers, ``--dist loadgroup``):

* The longest modules run first: xdist hands out work in collection order (``make test`` passes
  ``--no-loadscope-reorder``: by default xdist sends the groups with the most tests first), so a two-minute
  test collected last (``test_quiet.py`` sorts late) would run alone on one worker while the other idles.
  The list is the ``--durations`` report of ``make test``, per module or group (longest first); order among
  the rest is unchanged.
* The tests that share a module-scoped fixture of their module (a real run of a suite, a hunt) run on one
  worker: ``loadgroup`` hands out ungrouped tests one by one, so a module's tests landed on both workers and
  each worker ran the fixture again (13 fixtures twice in one ``make test``). Those tests get the
  ``xdist_group`` of their module; autouse fixtures (per-worker warm-up) do not group.
* Groups take effect: pytest-xdist 3.8 marks a test's group by appending ``@group`` to ``item._nodeid``,
  which pytest 9 no longer reads (its node id is ``item._id``), so under the pinned pair no group held,
  not even ``ray`` (two local Ray instances at once). ``pytest_collection_finish`` below appends it to the
  id xdist reports to its scheduler; a release of xdist that does it again makes it a no-op.
"""

import pytest

collect_ignore_glob = ["*.yaml", "*.yml"]

LONGEST_FIRST = ("test_quiet.py", "test_hunt.py", "test_registry_scope.py", "test_deadlines.py",
                 "test_shards_merge.py", "test_end_to_end.py", "test_mapping.py", "test_reports.py",
                 "test_ray_executor.py", "test_false_alarms.py", "test_claims.py", "test_mapping_pooling.py",
                 "test_gradients_mindspore.py", "test_mindspore_ops.py", "test_report_browser.py",
                 "test_reliability.py", "test_conv2d_op.py")


def shares_a_module_fixture(item) -> bool:
    """Whether ``item`` uses a module-scoped, non-autouse fixture defined in its own module."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    module = item.nodeid.split("::")[0]
    autouse = set(item.session._fixturemanager._getautousenames(item))
    return any(d.scope == "module" and d.baseid == module and d.argname not in autouse
               for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)   # stable: each module keeps its own order
    for item in items:
        if shares_a_module_fixture(item) and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.hookimpl(tryfirst=True)   # before xdist's worker sends the collected ids to the scheduler
def pytest_collection_finish(session):
    if not getattr(session.config.option, "loadgroup", False):   # xdist's workers under --dist loadgroup only
        return
    try:
        from _pytest.nodeid import coerce_node_id      # pytest 9; before it, xdist's own marking works
    except ImportError:
        return
    for item in session.items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        tail = item.nodeid.rsplit("]", 1)[-1]             # an "@" inside a parameter id is not a group
        if names and "@" not in tail and hasattr(item, "_id"):
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")   # what xdist 3.8 meant to do
