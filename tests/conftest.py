"""Shared fixtures: a PostgreSQL server and an ``mlflow server`` backed by it (tests/services.py).

Both start once per session, on first use, on 127.0.0.1; they stop at the session's end even when
tests fail. Without PostgreSQL installed a test that needs it is skipped, except under CI (CI=true),
where it fails: CI installs it (.ci/run).
"""

import os

import pytest

from tests.services import MlflowServer, Postgres, ServiceUnavailable, in_ci


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """XDG_CACHE_HOME in a temporary folder for the whole session (run.py subprocesses inherit it):
    no test reads or writes the user's ~/.cache (experiments.data caches MNIST-1D there)."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield os.environ["XDG_CACHE_HOME"]
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture(scope="session")
def postgres():
    """A running ``tests.services.Postgres``."""
    server = Postgres()
    try:
        server.start()
    except ServiceUnavailable as err:
        if in_ci():
            pytest.fail(f"CI needs PostgreSQL: {err}", pytrace=False)
        pytest.skip(str(err))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_on_postgres(postgres, tmp_path_factory):
    """A running ``tests.services.MlflowServer`` with its backend store in ``postgres``; its ``url``."""
    backend = postgres.create_database("mlflow").replace("postgresql://", "postgresql+psycopg2://", 1)
    server = MlflowServer(backend, tmp_path_factory.mktemp("mlflow-on-postgres"))
    try:
        server.wait()
        yield server
    finally:
        server.stop()
