"""What the Python integration tests share (pytest finds it by itself).

    pytest-3 test/python [--bin bin] [--certs build/tls]

--bin is the directory of the built programs, --certs the test PKI of
tools/make_test_certs.sh. bench/harness.py (starting and stopping an
enchufe-server by its PID, the protocol's framing) is the one module the
tests take from outside this directory; it is made importable here, once.
"""
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))


def pytest_addoption(parser):
    parser.addoption("--bin", default="bin", help="directory of the built binaries")
    parser.addoption("--certs", default="build/tls", help="tools/make_test_certs.sh's output")


@pytest.fixture(scope="session")
def bin_dir(request):
    return os.path.abspath(request.config.getoption("--bin"))


@pytest.fixture(scope="session")
def certs(request):
    path = os.path.abspath(request.config.getoption("--certs"))
    if not os.path.exists(os.path.join(path, "server.pem")):
        pytest.fail(f"no test PKI in {path}: make build/tls/server.pem")
    return path
