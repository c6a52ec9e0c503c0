"""Transport tests: real daemons on real unix sockets in short private folders."""

from __future__ import annotations

import shutil

import pytest

from socket_client import SharedDaemon, short_tmp


@pytest.fixture
def root():
    folder = short_tmp()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def daemon(root):
    with SharedDaemon.start(root) as d:
        yield d
