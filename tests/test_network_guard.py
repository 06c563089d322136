"""The suite is offline: a network attempt fails the test, even when the error is swallowed."""

import os
import socket

import pytest

from diffii_datasets.testing import network_guard


def test_offline_variables_are_forced():
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        assert os.environ[name] == "1"


def test_connection_to_a_remote_host_raises():
    with pytest.raises(network_guard.NetworkAccessBlocked, match="93.184.216.34"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(network_guard.NetworkAccessBlocked, match="example.com"):
        socket.getaddrinfo("example.com", 443)
    assert len(network_guard.take_attempts()) == 2


def test_loopback_stays_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=5)
    client.close()
    server.close()
    assert network_guard.take_attempts() == []


def test_swallowed_network_error_still_fails_the_test(pytester):
    pytester.makepyfile(
        """
        import socket

        def test_sneaky():
            try:
                socket.create_connection(("8.8.8.8", 53), timeout=1)
            except Exception:
                pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "diffii_datasets.testing.network_guard")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test tried to reach the network: *8.8.8.8*"])
