"""The repository's own tests: their YAML files are test data, never case files for the conform pytest plugin
(``harness/pytest_plugin.py``), even when pytest is given ``tests/`` explicitly.

The longest modules run first: pytest-xdist hands out work in collection order, so a two-minute test
collected last (``test_quiet.py`` sorts late) would run alone on one worker while the other idles. The
list is the ``--durations`` report of ``make test`` (longest first); order among the rest is unchanged.
"""

collect_ignore_glob = ["*.yaml", "*.yml"]

LONGEST_FIRST = ("test_quiet.py", "test_registry_scope.py", "test_deadlines.py", "test_ray_executor.py",
                 "test_hunt.py", "test_shards_merge.py", "test_false_alarms.py", "test_reliability.py",
                 "test_claims.py", "test_reports.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)   # stable: each module keeps its own order
