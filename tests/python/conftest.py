"""Starts a real `faultline serve` process for each test module, on free loopback ports."""

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Faultline:
    """A running `faultline serve` with its addresses."""

    def __init__(self, extra_args=()):
        self.data_dir = tempfile.mkdtemp(prefix="faultline-pytest-")
        self.grpc_port = free_port()
        self.otlp_http_port = free_port()
        self.http_port = free_port()
        binary = os.environ.get("FAULTLINE_BIN", str(ROOT / "target" / "debug" / "faultline"))
        self.log = open(os.path.join(self.data_dir, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [
                binary,
                "serve",
                "--data-dir", os.path.join(self.data_dir, "data"),
                "--otlp-grpc", f"127.0.0.1:{self.grpc_port}",
                "--otlp-http", f"127.0.0.1:{self.otlp_http_port}",
                "--http", f"127.0.0.1:{self.http_port}",
                *extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    @property
    def api(self):
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faultline exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if requests.get(f"{self.api}/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"faultline not ready after {timeout}s:\n{self.logs()}")

    def metric(self, name):
        """A label-less value the server reports on its /metrics right now."""
        r = requests.get(f"{self.api}/metrics", timeout=5)
        r.raise_for_status()
        for line in r.text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} is not on /metrics:\n{r.text}")

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def faultline():
    server = Faultline()
    yield server
    server.stop()
