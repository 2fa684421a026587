"""Real servers on 127.0.0.1 for tests: started as children, stopped by their PID.

``MlflowServer`` is a tracking server (``mlflow server``, on SQLite or on a given backend store);
``ModelServer`` is the scoring server of a registered model (``mlflow models serve``);
``PostgresServer`` is a PostgreSQL cluster made by ``initdb`` in a temporary directory, the backend
store of a team's server. Each runs in its own process group (uvicorn workers and PostgreSQL's
backends are children), so stopping one by its PID stops its workers too.
"""

from __future__ import annotations

import grp
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """A server child on 127.0.0.1:``port``, ready once ``health_path`` answers 200.

    Without a given port it takes a free one; should another process bind that port between
    the probe and the server's start (the server then exits), it starts again on another.
    """

    health_path = "/health"

    def __init__(self, root: Path, port: int = 0):
        self.root = root
        self.port = port or free_port()
        self._chosen_port = not port
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict:
        return dict(os.environ)

    def start(self, timeout: float = 180.0) -> ServerProcess:
        for attempt in range(3):
            if self._start_once(timeout):
                return self
            if not self._chosen_port or attempt == 2:
                break
            self.port = free_port()  # lost the port to another process: take another
        raise RuntimeError(
            f"{type(self).__name__} exited with {self.process.returncode}: {self.log.read_text()[-3000:]}"
        )

    def _start_once(self, timeout: float) -> bool:
        """Start and wait for the health check: True when it answers, False when the server exited."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
                **self.process_user(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(
            f"{type(self).__name__} on port {self.port} did not answer {self.health_path} "
            f"within {timeout} s; see {self.log}"
        )

    def process_user(self) -> dict:
        """``Popen``'s user and groups to run the server as (none: this process's)."""
        return {}

    def ready(self) -> bool:
        """Whether the server answers its health check."""
        try:
            with urllib.request.urlopen(f"{self.uri}{self.health_path}", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server and its workers by the server's PID (its process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._wait_port_free()

    def _wait_port_free(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)


class MlflowServer(ServerProcess):
    """``mlflow server`` with proxied artifacts under ``root`` (clients see ``mlflow-artifacts:/``
    URIs) and a SQLite backend there, or ``backend`` (e.g. ``PostgresServer.database_uri``);
    restarting reuses the port, store and artifacts. ``args``/``env``: more options and settings
    (e.g. ``--app-name basic-auth`` and its configuration)."""

    def __init__(
        self, root: Path, port: int = 0, args: tuple = (), env: dict | None = None, backend: str | None = None
    ):
        super().__init__(root, port)
        self.args, self.env = tuple(args), dict(env or {})
        self.backend = backend or f"sqlite:///{root / 'store.db'}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend,
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
            *self.args,
        ]

    def environment(self) -> dict:
        return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env}


class ModelServer(ServerProcess):
    """``mlflow models serve`` of ``model_uri`` (``--env-manager local``)."""

    health_path = "/ping"

    def __init__(self, root: Path, model_uri: str, port: int = 0):
        super().__init__(root, port)
        self.model_uri = model_uri

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            self.model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    def environment(self) -> dict:
        # the scoring server runs `uvicorn` from PATH: as with an activated virtual environment
        return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path | None:
    """The directory of PostgreSQL's ``initdb`` and ``postgres``: ``$ELISTIMATOR_POSTGRES_BIN``, else
    the newest of Debian's versioned ``/usr/lib/postgresql/<n>/bin``, else PATH; None without them."""
    given = os.environ.get("ELISTIMATOR_POSTGRES_BIN")
    found = (
        [Path(given)]
        if given
        else sorted(
            Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/")),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        )
    )
    if not given and shutil.which("initdb"):
        found.insert(0, Path(shutil.which("initdb")).parent)
    return next((d for d in reversed(found) if (d / "initdb").is_file() and (d / "postgres").is_file()), None)


class PostgresServer(ServerProcess):
    """A PostgreSQL cluster of its own: ``initdb`` into a new temporary directory, the server on
    127.0.0.1:``port`` (no Unix socket), password login (scram-sha-256) for ``user``.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user and
    its programs run as that user. The directory lies outside pytest's (a root-only folder) and
    ``remove()`` deletes it. ``stop()`` is a fast shutdown (SIGINT to the postmaster's group).
    """

    health_path = "(a login)"

    def __init__(self, bin_dir: Path, user: str = "mlflow", password: str = "team-db-pw", port: int = 0):
        super().__init__(Path(tempfile.mkdtemp(prefix="elistimator-postgres-")), port)
        self.bin_dir, self.user, self.password = bin_dir, user, password
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self._chown(self.root)
        (self.root / "password").write_text(password + "\n")
        self._chown(self.root / "password")
        self._run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                user,
                f"--pwfile={self.root / 'password'}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )

    @property
    def data(self) -> Path:
        return self.root / "data"

    def database_uri(self, database: str) -> str:
        """The SQLAlchemy URI of ``database`` (created by ``create_database``), as ``mlflow server`` takes it."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def command(self) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ]

    def ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.database_uri("postgres"), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URI."""
        import psycopg

        with psycopg.connect(self.database_uri("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.database_uri(name)

    def stop(self, sig: int = signal.SIGINT) -> None:
        super().stop(sig)

    def remove(self) -> None:
        """Stop the server and delete its cluster."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def process_user(self) -> dict:
        if self._owner is None:
            return {}
        return {
            "user": self._owner.pw_uid,
            "group": self._owner.pw_gid,
            "extra_groups": [g.gr_gid for g in grp.getgrall() if self._owner.pw_name in g.gr_mem],
        }

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, **self.process_user())
        if done.returncode != 0:
            self.remove()
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port``, with network faults: ``blip()`` closes
    every open connection and resets the next new one (a network blip, a restarted server);
    ``down()`` stops listening, so connections are refused, until ``up()``."""

    def __init__(self, target_port: int):
        import threading

        self.target_port = target_port
        self._lock = threading.Lock()
        self._open: set = set()
        self._resets = 0
        self.port = 0
        self.up()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        import threading

        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def down(self) -> None:
        _close(self._listener)  # shutdown first: it wakes the thread blocked in accept()
        self.blip(0)

    def blip(self, resets: int = 1) -> None:
        with self._lock:
            self._resets = resets
            for connection in self._open:
                _close(connection)
            self._open.clear()

    close = down

    def _accept(self, listener: socket.socket) -> None:
        import struct
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                reset, self._resets = self._resets > 0, max(0, self._resets - 1)
            if reset:  # RST instead of FIN: the client sees "connection reset by peer"
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
