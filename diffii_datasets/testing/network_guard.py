"""A pytest plugin that keeps the test suite offline.

It forces the Hugging Face offline switches before any test module imports the
hub libraries, and makes every socket connection or name lookup to a host other
than loopback raise :class:`NetworkAccessBlocked`. Attempts are also recorded, so
a test whose code swallows the exception still fails at teardown.

Enabled for this project's suite through ``-p diffii_datasets.testing.network_guard``
in ``setup.cfg``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

import pytest

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
}

# Set at import, before any test module imports huggingface_hub (which reads them once).
os.environ.update(OFFLINE_ENV)

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "", None}

_attempts: list[str] = []
_originals: dict[str, Any] = {}


class NetworkAccessBlocked(RuntimeError):
    """Raised when code under test tries to reach a host other than loopback."""


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(family: int, address: Any) -> None:
    if family == getattr(socket, "AF_UNIX", object()):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_local(host):
        _attempts.append(f"connect to {address!r}")
        raise NetworkAccessBlocked(f"tests must stay offline: blocked a connection to {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    _check_address(self.family, address)
    return _originals["connect"](self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    _check_address(self.family, address)
    return _originals["connect_ex"](self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host):
        _attempts.append(f"name lookup of {host!r}")
        raise NetworkAccessBlocked(f"tests must stay offline: blocked a name lookup of {host!r}")
    return _originals["getaddrinfo"](host, *args, **kwargs)


def take_attempts() -> list[str]:
    """Return and forget the blocked attempts of the running test (for tests of the guard)."""
    found = list(_attempts)
    del _attempts[:]
    return found


def install() -> None:
    """Force the offline variables and patch the socket module (idempotent)."""
    os.environ.update(OFFLINE_ENV)
    if _originals:
        return
    _originals.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        getaddrinfo=socket.getaddrinfo,
    )
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


def pytest_configure(config: pytest.Config) -> None:
    install()


@pytest.fixture(autouse=True)
def _fail_on_network_attempt():
    """Fail the test if anything tried to go online, even if the error was caught."""
    take_attempts()
    yield
    found = take_attempts()
    if found:
        pytest.fail(f"test tried to reach the network: {', '.join(found)}", pytrace=False)
