"""Real MLflow servers on 127.0.0.1 for tests: started as children, stopped by their PID.

``MlflowServer`` is a tracking server (``mlflow server``); ``ModelServer`` is the scoring server
of a registered model (``mlflow models serve``). Both run in their own process group (their
uvicorn workers are children), so stopping one by its PID stops its workers too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List


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

    def command(self) -> List[str]:
        raise NotImplementedError

    def environment(self) -> dict:
        return dict(os.environ)

    def start(self, timeout: float = 180.0) -> "ServerProcess":
        for attempt in range(3):
            if self._start_once(timeout):
                return self
            if not self._chosen_port or attempt == 2:
                break
            self.port = free_port()  # lost the port to another process: take another
        raise RuntimeError(f"{type(self).__name__} exited with {self.process.returncode}: "
                           f"{self.log.read_text()[-3000:]}")

    def _start_once(self, timeout: float) -> bool:
        """Start and wait for the health check: True when it answers, False when the server exited."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            env=self.environment(), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.uri}{self.health_path}", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"{type(self).__name__} on port {self.port} did not answer {self.health_path} "
                           f"within {timeout} s; see {self.log}")

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
    """``mlflow server`` with a SQLite backend and proxied artifacts under ``root``; restarting
    reuses the port, store and artifacts. ``args``/``env``: more options and settings (e.g.
    ``--app-name basic-auth`` and its configuration)."""

    def __init__(self, root: Path, port: int = 0, args: tuple = (), env: dict | None = None):
        super().__init__(root, port)
        self.args, self.env = tuple(args), dict(env or {})

    def command(self) -> List[str]:
        return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.root / 'store.db'}",
                "--artifacts-destination", str(self.root / "artifacts"), "--workers", "1", *self.args]

    def environment(self) -> dict:
        return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env}


class ModelServer(ServerProcess):
    """``mlflow models serve`` of ``model_uri`` (``--env-manager local``)."""

    health_path = "/ping"

    def __init__(self, root: Path, model_uri: str, port: int = 0):
        super().__init__(root, port)
        self.model_uri = model_uri

    def command(self) -> List[str]:
        return [sys.executable, "-m", "mlflow", "models", "serve", "-m", self.model_uri, "--env-manager", "local",
                "--host", "127.0.0.1", "--port", str(self.port)]

    def environment(self) -> dict:
        # the scoring server runs `uvicorn` from PATH: as with an activated virtual environment
        return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


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
