"""Tracking URIs as this package records and shows them: without credentials.

A tracking URI may carry secrets: user info (``http://user:password@host``,
``postgresql://user:password@host/db``) or query parameters with secret-looking names
(``?token=...``; the names are ``run_info.is_secret_name``'s). They never leave the
process: everything written or shown (``elistimator.json``, the journal's ``store.json``,
exported checkpoints, params, tags, warnings) uses the *public* URI, without them.

At run time credentials come from where MLflow looks for them
(``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``,
``~/.mlflow/credentials``; a database's own variables such as ``PGPASSWORD``), or, for a
URI given with credentials in this process, from this process's memory: an HTTP store's
client gets the public URI and its user and password are handed to MLflow's requests to
that host only when MLflow found none (so nothing MLflow prints or raises shows them,
and ``os.environ`` is untouched), and only within this package's own calls
(``http_limits.in_our_call``): the user's own MLflow calls to that host, in the same process,
get exactly what they would get without this package. Any other store's client gets the whole
URI.

MLflow offers no public way to hand credentials to one host (its request-header providers are
told no host, and its artifact downloads run on threads of their own), so this is a patch of
``MlflowHostCreds.__init__``, installed once, scoped to our calls; ``tests/test_mlflow_internals.py``
fails loudly if the MLflow details it relies on change.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StoreNotFoundError, TrackingError
from .http_limits import in_our_call
from .run_info import is_secret_name

_http_credentials: dict[str, tuple[str, str]] = {}  # scheme://host:port -> (user, password)
_full_uris: dict[str, str] = {}  # public URI -> the URI given with its credentials (non-HTTP stores)
_install_lock = threading.Lock()
_installed = False


@dataclass(frozen=True)
class StoreUri:
    """A tracking store: ``public`` (what is recorded and shown) and ``client_uri`` (what the
    MlflowClient of this process is given)."""

    public: str
    client_uri: str

    @classmethod
    def given(cls, uri: str) -> StoreUri:
        """A URI as the caller gave it; its credentials, if any, are kept in memory for this process."""
        uri = absolute_uri(uri)
        public = public_uri(uri)
        parts = urlsplit(uri)
        if public == uri:
            return cls.recorded(public)
        if parts.scheme in ("http", "https") and parts.username is not None:
            _install()
            _http_credentials[_origin(uri)] = (parts.username, parts.password or "")
            return cls(public, _without_user_info(uri))
        _full_uris[public] = uri
        return cls(public, uri)

    @classmethod
    def recorded(cls, public: str) -> StoreUri:
        """A recorded (public) URI, with the credentials this process was given for it: in a URI
        given earlier, or in ``MLFLOW_TRACKING_URI``."""
        if public in _full_uris:
            return cls(public, _full_uris[public])
        from_env = os.environ.get("MLFLOW_TRACKING_URI")
        if from_env and from_env != public and public_uri(absolute_uri(from_env)) == public:
            return cls.given(from_env)
        return cls(public, public)


#: stores on a network, and their default ports
NETWORK_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}
#: database stores: MLflow retries creating their engine for about 100 s (10 attempts, its
#: ``MAX_RETRY_COUNT``) before it answers, logging each attempt; a port that does not listen is told at once
DATABASES = ("postgresql", "mysql", "mssql")


def network_address(uri: str) -> tuple[str, int] | None:
    """``(host, port)`` of a store on a network (HTTP, PostgreSQL, MySQL, MSSQL); None for a local one."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    if scheme not in NETWORK_PORTS or not parts.hostname:
        return None
    return parts.hostname, parts.port or NETWORK_PORTS[scheme]


def unreachable(address: tuple[str, int], timeout: float) -> str | None:
    """Why nothing answers a TCP connection to ``address`` within ``timeout`` seconds (None: it listens)."""
    try:
        socket.create_connection(address, timeout=timeout).close()
        return None
    except OSError as error:
        return str(error) or type(error).__name__


def is_database(uri: str) -> bool:
    return urlsplit(uri).scheme.split("+")[0] in DATABASES


def require_existing(store: StoreUri, timeout: float | None = None) -> None:
    """Refuse a local store that does not exist: reading one must never create it (MLflow would make an
    empty ``mlflow.db``, or a folder, and then report an unknown run or experiment); and a database store
    whose port does not listen, within ``timeout`` (default ``http_limits.store_timeout()``), with one
    line instead of MLflow's minutes of engine retries."""
    parts = urlsplit(store.client_uri)
    address = network_address(store.client_uri)
    if is_database(store.client_uri) and address is not None:
        from .http_limits import store_timeout

        why = unreachable(address, store_timeout() if timeout is None else timeout)
        if why is not None:
            raise TrackingError(
                f"the tracking store {store.public} does not answer ({why}); start it, or name "
                "another one (--tracking-uri, tracking=..., or MLFLOW_TRACKING_URI)"
            )
        return
    if parts.scheme == "sqlite":
        path = store.client_uri[len("sqlite:///") :] if store.client_uri.startswith("sqlite:///") else ""
        missing = path and path != ":memory:" and not os.path.isfile(path)
    elif parts.scheme in ("", "file"):
        path = parts.path if parts.scheme else store.client_uri
        missing = not os.path.isdir(path)
    else:
        return
    if missing:
        raise StoreNotFoundError(
            f"there is no MLflow store at {store.public} ({path} does not exist); "
            "name the store that holds the runs (--tracking-uri, tracking=..., or MLFLOW_TRACKING_URI)"
        )


def public_uri(uri: str) -> str:
    """``uri`` without user info and without query parameters whose names look secret."""
    parts = urlsplit(uri)
    if not parts.netloc and not parts.query:
        return uri
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_secret_name(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def absolute_uri(uri: str) -> str:
    """``sqlite:///rel.db`` is relative to the working directory: pin it, so a resumed run finds it."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri != prefix + ":memory:":
        return prefix + os.path.abspath(uri[len(prefix) :])
    return uri


def _without_user_info(uri: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _install() -> None:
    """Teach MLflow's host credentials to use the ones kept in memory, for their host only (once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow.utils.rest_utils import MlflowHostCreds

        original = MlflowHostCreds.__init__

        def __init__(self, host, *args, **kwargs):
            original(self, host, *args, **kwargs)
            kept = _http_credentials.get(_origin(str(host))) if host and in_our_call() else None
            if kept and not (self.username or self.password or self.token):
                if kept[1]:
                    self.username, self.password = kept
                else:  # user info without a password: a token
                    self.token = kept[0]

        MlflowHostCreds.__init__ = __init__  # type: ignore[method-assign]
        _installed = True
