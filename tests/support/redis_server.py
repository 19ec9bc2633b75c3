"""A Redis of a test's (or a benchmark's) own, to kill and start again."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.support.net import free_port


class RedisServer:
    """``redis-server`` on a port of its own, without persistence: started again, it comes back empty, as a restarted
    cache does. ``folder`` is its working directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it accepts connections."""
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL, as a crash: whatever it held is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
