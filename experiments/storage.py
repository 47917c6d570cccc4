"""Optuna storage from ``sweep.storage``: a file path → journal file, a URL → RDB engine.

A journal file is Optuna's advice for several processes on one machine; an RDB server
(PostgreSQL, MySQL) for several machines. On an RDB storage every running trial records a
heartbeat; a trial whose heartbeat stops (its worker died) is failed by the next worker that
claims a trial and retried once more (a new trial with the same parameters, in its place).
Three options of ours may ride in the URL's query and are taken out before the URL reaches
the database driver: ``heartbeat_interval`` (seconds, default 10), ``grace_period`` (seconds
without a heartbeat before a trial is failed, default 30) and ``max_retry`` (default 1), e.g.
``postgresql://user@host/db?heartbeat_interval=5&grace_period=20``. A call whose database connection
drops (a restarted server, ``pg_terminate_backend``) is tried again on a new one (``ReconnectingRDBStorage``).

Locks: :func:`exclusive` serialises "count the trials, then ask for one" among every process
that shares the storage: an ``flock`` on a file next to a journal file or SQLite database
(one machine), ``pg_advisory_lock`` on PostgreSQL (any number of machines). Other servers
(MySQL) get no lock: best effort, two workers claiming at the same instant may run one
trial more than asked.
"""

import copy
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import time
import urllib.parse
import warnings
from contextlib import contextmanager, nullcontext, suppress

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file
from optuna.storages.journal._storage import JournalOperation

from .interrupts import sigint_deferred
from .urls import mask_password, sqlite_file

HEARTBEAT_INTERVAL = 10  # seconds between two heartbeats of a running trial (RDB storages)
GRACE_PERIOD = 30  # seconds without a heartbeat before a running trial counts as dead
MAX_RETRY = 1  # a dead worker's trial is run again this many times at most
CONNECT_TIMEOUT = 5  # seconds to reach a PostgreSQL server before giving up
OPTIONS = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD, "max_retry": MAX_RETRY}


UNSYNCED = frozenset({JournalOperation.SET_TRIAL_PARAM, JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE,
                      JournalOperation.SET_TRIAL_USER_ATTR, JournalOperation.SET_TRIAL_SYSTEM_ATTR})


class JournalFlock(BaseJournalFileLock):
    """The journal's write lock as an ``flock`` on the journal file itself, in place of Optuna's
    symlink lock: the kernel frees it when its process dies (a symlink lock stays behind), and it
    costs one system call each way instead of three file creations and removals (0.02 against
    0.12 ms a write after an epoch's training, ~40 writes a trial). Every process of the harness
    takes it; any other Optuna writer (a dashboard) appends whole lines in one ``write`` each.
    """

    def __init__(self, path: str):
        self.path = path
        self._fd, self._pid = -1, -1

    def fd(self) -> int:
        """This process's append descriptor of the journal. A forked child opens its own: an ``flock``
        belongs to the open file, so a child using its parent's would not exclude the parent."""
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666), os.getpid()
        return self._fd

    def acquire(self) -> bool:
        fcntl.flock(self.fd(), fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __del__(self, getpid=os.getpid, close=os.close) -> None:  # bound now: at exit ``os`` may be gone
        if self._pid == getpid():
            close(self._fd)


class TrialSyncedJournalBackend(JournalFileBackend):
    """Optuna's journal file, ``fsync``-ed once per trial state change rather than on every write,
    locked by :class:`JournalFlock`.

    Optuna's backend calls ``fsync`` after each append: ~40 a trial (a parameter, an epoch's
    reported value, a user attribute each), 2 ms apiece here, a quarter of a default study's time.
    The writes that only fill in a running trial are appended (every process on the machine reads
    them at once) but synced with the trial's next state change (its ``tell``), whose ``fsync``
    makes the whole file durable. A power cut can lose only the unfinished trial's details, which
    a restart discards with the trial anyway (it is failed as dead and run again).
    """

    def __init__(self, file_path: str):
        super().__init__(file_path, JournalFlock(file_path))

    def append_logs(self, logs: list[dict]) -> None:
        with sigint_deferred():  # a Ctrl-C between the lines would leave half a record
            if any(log["op_code"] not in UNSYNCED for log in logs):
                super().append_logs(logs)
                return
            data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode()
            with get_lock_file(self._lock):
                while data:
                    data = data[os.write(self._lock.fd(), data):]


class StorageError(ValueError):
    """``sweep.storage`` cannot be used as given; the message is one line."""


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the password of ``url`` masked wherever it appears."""
    text = mask_password(text)
    password = urllib.parse.urlsplit(str(url)).password if is_rdb(url) else None
    if password:
        for form in {password, urllib.parse.unquote(password)}:
            text = text.replace(form, "***")
    return text


def is_rdb(url: str) -> bool:
    """True for a database URL, False for a journal file path."""
    return "://" in str(url)


def is_postgres(url: str) -> bool:
    """True for ``postgresql://`` (and ``postgresql+driver://``, ``postgres://``) URLs."""
    return str(url).split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def split_options(url: str) -> tuple[str, dict[str, int]]:
    """(the URL without our options, {option: value}) with defaults for the options not given."""
    parts = urllib.parse.urlsplit(str(url))
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = dict(OPTIONS)
    kept = []
    for key, value in query:
        if key not in OPTIONS:
            kept.append((key, value))
            continue
        try:
            options[key] = int(value)
        except ValueError:
            raise StorageError(f"sweep.storage: {key}={value!r} must be an integer") from None
        if options[key] < (0 if key == "max_retry" else 1):
            raise StorageError(f"sweep.storage: {key}={value!r} must be >= {0 if key == 'max_retry' else 1}")
    if options["grace_period"] <= options["heartbeat_interval"]:
        raise StorageError(f"sweep.storage: grace_period={options['grace_period']} must exceed "
                           f"heartbeat_interval={options['heartbeat_interval']}")
    query = urllib.parse.urlencode(kept)  # not urlunsplit: it drops a slash of sqlite:////abs/path
    clean = str(url).split("?", 1)[0] + (f"?{query}" if query else "")
    return with_driver(clean), options


def with_driver(url: str) -> str:
    """``postgresql://`` spelled with an installed driver: SQLAlchemy 2.1 reads it as psycopg (3); with
    only psycopg2 installed (the ``postgres`` extra), ``postgresql+psycopg2://``. Other URLs unchanged."""
    scheme, rest = str(url).split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine arguments: pre-ping pooled connections; a connect timeout on PostgreSQL."""
    kwargs: dict = {"pool_pre_ping": True}
    if is_postgres(url) and "connect_timeout" not in urllib.parse.urlsplit(url).query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return kwargs


SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")  # database URLs Optuna's RDB storage takes


def journal_path(url: str) -> str:
    """The absolute path of a journal file; ``StorageError`` when its folder does not exist (the file
    itself may be new: a mistyped folder is an error, never created)."""
    path = os.path.abspath(os.path.expanduser(str(url)))
    if not os.path.isdir(os.path.dirname(path)):
        raise StorageError(f"sweep.storage={url}: the folder {os.path.dirname(path)} does not exist "
                           "(a journal file may be new, its folder must exist)")
    return path


def check_scheme(url: str) -> None:
    """``StorageError`` for a database URL whose scheme Optuna's RDB storage does not take."""
    scheme = str(url).split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in SCHEMES:
        raise StorageError(f"sweep.storage={mask_password(url)}: unknown scheme {scheme!r}; use a journal file "
                           f"path or a URL of {', '.join(s + '://' for s in SCHEMES)}")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage ``url`` names; a journal file path is taken relative to the launch dir.

    An RDB storage records heartbeats and retries the trials of dead workers (see the module's
    doc). Creating Optuna's tables is serialised on PostgreSQL: workers started together race
    otherwise ("duplicate key value violates unique constraint"); a connection that drops meanwhile
    (the lock's with it) is opened again, and a race lost all the same is run again, on the tables made."""
    if is_rdb(url):
        import sqlalchemy.exc

        check_scheme(url)
        clean, options = split_options(url)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            make = reconnecting(functools.partial(
                ReconnectingRDBStorage, clean, engine_kwargs=engine_kwargs(clean),
                heartbeat_interval=options["heartbeat_interval"], grace_period=options["grace_period"],
                heartbeat_stale_trial_callback=Retry(max_retry=options["max_retry"])))
            with exclusive(url, "schema") if is_postgres(url) else nullcontext():
                try:
                    return make()
                except sqlalchemy.exc.IntegrityError:  # another worker made the tables at the same instant
                    return make()
    return JournalStorage(TrialSyncedJournalBackend(journal_path(url)))


RECONNECTS = 5  # times a storage call dropped with its database connection is tried again
RECONNECT_WAIT = 0.5  # seconds before the first try again (then twice as long each time)


def dropped(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) is an open database connection that broke: a server restart,
    ``pg_terminate_backend``, a network cut. SQLAlchemy then replaces the connection on the next call.
    A server that refuses a new connection is not one: an unreachable database fails at once."""
    import sqlalchemy.exc

    while err is not None:
        if isinstance(err, sqlalchemy.exc.DBAPIError) and err.connection_invalidated:
            return True
        if isinstance(err, sqlalchemy.exc.PendingRollbackError):  # a session the broken connection left
            return True
        err = err.__cause__
    return False


def reconnecting(call):
    """``call`` tried again (``RECONNECTS`` times, waiting longer each time) while its database connection
    drops; any other error is raised at once."""

    @functools.wraps(call)
    def again(*args, **kwargs):
        for attempt in range(RECONNECTS):
            try:
                return call(*args, **kwargs)
            except Exception as err:  # Optuna's StorageInternalError, SQLAlchemy's own errors
                if not dropped(err):
                    raise
            time.sleep(RECONNECT_WAIT * 2**attempt)
        return call(*args, **kwargs)

    return again


class ReconnectingRDBStorage(RDBStorage):
    """Optuna's RDB storage whose calls survive a dropped database connection (:func:`reconnecting`).
    A call whose connection broke after its commit reached the server may be applied twice: each
    of the harness's writes then is a no-op or fails as a finished trial's (a dead worker's)."""


RECONNECTED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
               "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
               "get_study_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
               "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
               "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
               "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials", "get_best_trial",
               "record_heartbeat",  # every public call of Optuna's storage API (BaseStorage, BaseHeartbeat),
               "_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials",  # and those that
               "_get_stale_trial_ids")  # Optuna's cache (which create_study wraps an RDBStorage in) makes
for call_name in RECONNECTED:
    if hasattr(RDBStorage, call_name):  # the private ones may change with Optuna (tests/test_postgres.py checks)
        setattr(ReconnectingRDBStorage, call_name, reconnecting(getattr(RDBStorage, call_name)))


class Retry(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a dead worker's trial (a WAITING copy: same parameters and attrs), minus the
    dead worker's ``host`` and ``pid``: until its new worker sets its own, the copy must not look dead."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("host", "pid")}
        super().__call__(study, trial)


def describe(url: str) -> str:
    """Where the study lives, for people: an absolute file path or the masked URL."""
    return mask_password(url) if is_rdb(url) else os.path.abspath(os.path.expanduser(str(url)))


def lock_key(name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``, the same on every machine for ``name``."""
    return int.from_bytes(hashlib.sha256(f"nnsweep:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def file_lock(path: str):
    """An exclusive ``flock`` on ``path`` (created if missing) for the block: every process of this machine."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def exclusive(url: str, name: str = ""):
    """Hold the lock named ``name`` among every process that uses the storage ``url``.

    Journal file or ``sqlite:///`` database: an ``flock`` on ``<file>.claim-lock`` (one lock per file;
    not ``.lock``: Optuna's journal uses that name). PostgreSQL: ``pg_advisory_lock`` on a key derived
    from ``name``, held by a connection of its own for the block (the server frees it if the process
    dies). Other servers: no lock."""
    url = str(url)
    path = None
    if not is_rdb(url):
        path = os.path.abspath(os.path.expanduser(url))
    else:
        path = sqlite_file(url)
    if path is not None:
        with file_lock(path + ".claim-lock"):
            yield
        return
    if not is_postgres(url):
        yield
        return
    with _advisory_lock(split_options(url)[0], lock_key(name)):
        yield


def has_claim_lock(url: str) -> bool:
    """True when :func:`claim_lock` excludes every other claimer: a journal file, SQLite, PostgreSQL."""
    return not is_rdb(url) or is_postgres(url) or sqlite_file(url) is not None


@contextmanager
def claim_lock(storage_url: str, name: str = ""):
    """A lock shared by every process that claims trials in this storage: one machine for a journal
    file or SQLite, every machine for PostgreSQL (``name``: the study; see :func:`exclusive`)."""
    with exclusive(storage_url, f"claim:{name}"):
        yield


@contextmanager
def _advisory_lock(url: str, key: int):
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool, **{k: v for k, v in engine_kwargs(url).items()
                                                                  if k != "pool_pre_ping"})
    try:
        connection = reconnecting(_locked_connection)(engine, key)  # dropped while waiting: wait again
        try:
            yield
        finally:
            with suppress(Exception):  # a broken connection: the server has freed the lock already
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            connection.close()
    finally:
        engine.dispose()


def _locked_connection(engine, key: int):
    """A new connection of ``engine`` that holds ``pg_advisory_lock(key)`` (waiting for it)."""
    import sqlalchemy

    connection = engine.connect()
    try:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
    except BaseException:
        connection.close()
        raise
    return connection
