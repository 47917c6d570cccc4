"""Throwaway servers for tests and benchmarks, on 127.0.0.1 and free ports: PostgreSQL and ``mlflow server``;
and Ctrl-C sent to a ``run.py`` the tests started (:func:`interrupt_when`).

PostgreSQL: ``initdb`` + ``pg_ctl`` into a fresh directory under /tmp, trust authentication for
connections from this machine only (it listens on 127.0.0.1, its unix socket sits in its data
directory), fsync off (a test database). ``initdb`` refuses to run as root: as root, the server
runs as the ``postgres`` user (the Debian package makes it; .ci/run too when it is missing), and
its directory is made outside pytest's temp dirs, which only root may enter.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PG_USER = "nnsweep"  # the database superuser initdb makes (trust authentication: no password needed)
RUN_AS = "postgres"  # the system user that runs the server when we are root


class ServiceUnavailable(RuntimeError):
    """A server cannot be started on this machine (its programs are not installed)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_from_a_terminal() -> None:
    """``preexec_fn`` of a ``run.py`` the tests will Ctrl-C: SIGINT at its default, as a shell starts a
    command in the foreground. A background job of a non-interactive shell (``sh script &``, as a CI
    runner may start the tests) inherits SIGINT ignored, and so would ``run.py``."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(proc: subprocess.Popen, ready, timeout: float) -> tuple[str, str]:
    """Once ``ready()`` holds (within ``timeout`` seconds, while ``proc`` runs), send SIGINT to ``proc``'s
    process group, as Ctrl-C in a terminal does, and return its (stdout, stderr). ``proc`` must have been
    started with ``start_new_session=True`` and ``preexec_fn=as_from_a_terminal``; its group is killed
    if anything goes wrong."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def in_ci() -> bool:
    """True under CI (env CI=true), where a missing server fails a test instead of skipping it."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def pg_program(name: str) -> str | None:
    """The path of a PostgreSQL server program (initdb, pg_ctl): on PATH, else Debian's newest version."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    return versions[-1] if versions else None


class Postgres:
    """A PostgreSQL server of its own: ``start()``, ``url(database)``, ``create_database(name)``, ``stop()``."""

    def __init__(self):
        self.port: int | None = None
        self.folder: str | None = None
        self._owner: pwd.struct_passwd | None = None

    @property
    def data(self) -> str:
        return os.path.join(self.folder, "data")

    def start(self, timeout: float = 60) -> Postgres:
        """initdb and start; ``ServiceUnavailable`` when PostgreSQL is not installed (or, as root, no
        ``postgres`` user exists)."""
        initdb, pg_ctl = pg_program("initdb"), pg_program("pg_ctl")
        if not initdb or not pg_ctl:
            raise ServiceUnavailable("PostgreSQL server programs (initdb, pg_ctl) not found; "
                                     "install them: apt-get install -y postgresql")
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise ServiceUnavailable(f"running as root and no {RUN_AS!r} user to run PostgreSQL as: "
                                         f"useradd --system {RUN_AS}") from None
        self.folder = tempfile.mkdtemp(prefix="nnsweep-pg-")  # mode 0700, owned by whoever runs the server
        try:
            if self._owner is not None:
                os.chown(self.folder, self._owner.pw_uid, self._owner.pw_gid)
            self._run([initdb, "-D", self.data, "-U", PG_USER, "--auth=trust", "--encoding=UTF8", "--locale=C",
                       "--no-sync"], timeout)
            self.port = free_port()
            options = (f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off -c synchronous_commit=off "
                       "-c full_page_writes=off -c max_connections=200")
            self._run([pg_ctl, "-D", self.data, "-l", os.path.join(self.folder, "server.log"), "-w",
                       "-t", str(int(timeout)), "-o", options, "start"], timeout + 10)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, command: list[str], timeout: float) -> None:
        owner = self._owner
        kwargs = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
               "HOME": owner.pw_dir if owner is not None else os.environ.get("HOME", "/")}
        proc = subprocess.run(command, cwd=self.folder, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **kwargs)
        if proc.returncode != 0:
            log = Path(self.folder, "server.log")
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command[:1])} failed ({proc.returncode}): {proc.stderr[-2000:]}{tail}")

    def url(self, database: str = "postgres", password: str | None = None, user: str = PG_USER,
            query: str = "") -> str:
        """``postgresql://user[:password]@127.0.0.1:PORT/database[?query]``."""
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def execute(self, statement: str, params: tuple | None = None) -> tuple | None:
        """``statement`` run as the superuser on the ``postgres`` database (autocommit); its first row, if any."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres",
                                      connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchone() if cursor.description is not None else None
        finally:
            connection.close()

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; returns its URL."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` every connection to ``database``, as a database that drops them; how many."""
        return int(self.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))[0])

    def stop(self) -> None:
        """Stop the server (immediately: a test database) and delete its directory."""
        pg_ctl = pg_program("pg_ctl")
        if self.folder and os.path.exists(os.path.join(self.data, "postmaster.pid")) and pg_ctl:
            with contextlib.suppress(Exception):
                self._run([pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop"], 30)
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with ``backend_store_uri`` (e.g. a PostgreSQL URL) and artifacts
    served from ``folder/artifacts`` (``--serve-artifacts``: workers need no shared disk). Started
    when made; ``stop()`` then ``start()`` restarts it on the same port (an operator's restart)."""

    def __init__(self, backend_store_uri: str, folder: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_store_uri, self.folder = backend_store_uri, folder
        self.log_path = folder / "mlflow-server.log"
        self.start()

    def start(self) -> None:
        """Launch the server (its own process group); ``wait()`` for it to answer."""
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", self.backend_store_uri, "--serve-artifacts",
             "--artifacts-destination", str(self.folder / "artifacts")],
            cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

    def wait(self, timeout: float = 120) -> str:
        """The server's URL once ``/health`` answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited:\n" + self.log_path.read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("mlflow server did not answer /health in time:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        """Stop the server and its workers (its own process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


class OptunaDashboard:
    """``optuna-dashboard optuna.journal --host 127.0.0.1 --port P`` in ``folder`` (the README's one-liner),
    its own process group; ``wait()`` for its API, ``stop()`` it."""

    COMMAND = Path(sys.executable).with_name("optuna-dashboard")  # the [dashboard] extra's command (also in [dev])

    def __init__(self, folder: Path, journal: str = "optuna.journal"):
        assert self.COMMAND.is_file(), f"{self.COMMAND} is missing: pip install -e '.[dashboard]'"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(self.COMMAND), journal, "--host", "127.0.0.1", "--port", str(self.port)],
                                     cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)

    def wait(self, timeout: float = 60) -> str:
        """The dashboard's URL once ``/api/meta`` answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/meta", timeout=2):
                    return self.url
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"optuna-dashboard did not answer on {self.url}: "
                                       f"{self.proc.communicate()[0][-2000:]}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
