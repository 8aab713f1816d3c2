"""The repository's own tests: their YAML files are test data, never case files for the conform pytest plugin
(``harness/pytest_plugin.py``), even when pytest is given ``tests/`` explicitly."""

collect_ignore_glob = ["*.yaml", "*.yml"]
