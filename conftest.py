"""The suite's plugins: the services tests start (tests/services.py), and every snippet of the README
and docs/ run as a test (tests/docs_examples.py)."""

pytest_plugins = ["tests.services", "tests.docs_examples", "pytester"]
