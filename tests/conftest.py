"""Shared test fixtures.

Offline, the data can live in a folder ``shared/data`` beside the checkout; when it exists and
``L2L_DATA`` is unset, the tests point ``L2L_DATA`` there.
"""

import contextlib
import functools
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from l2l import data

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def shared_data_dir():
    """Set ``L2L_DATA`` to the ``shared/data`` folder beside the checkout for the test run, when
    it exists and none is set."""
    if os.environ.get("L2L_DATA") or not SHARED_DATA.is_dir():
        yield os.environ.get("L2L_DATA")
        return
    os.environ["L2L_DATA"] = str(SHARED_DATA)
    try:
        yield str(SHARED_DATA)
    finally:
        os.environ.pop("L2L_DATA", None)


@pytest.fixture
def mnist_dir(shared_data_dir):
    """The folder of the real MNIST files; skips the test if they are not all there."""
    folder = data.mnist_folder()
    missing = [name for name in data.MNIST_FILES if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"real MNIST files absent from {folder}: {', '.join(missing)}")
    return folder


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging every request."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_folder(folder):
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused: 'offline')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
