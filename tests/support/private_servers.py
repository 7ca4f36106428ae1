"""Private Redis and Postgres servers for fault tests: started on free ports in a temporary
directory, stopped / paused / restarted by the test, and always torn down afterwards. They never
touch the machine's shared servers (127.0.0.1:5432 / 6379).

``private_redis()`` runs ``redis-server`` without persistence; ``private_postgres()`` creates a
cluster with ``initdb`` and runs it with ``pg_ctl`` (as the ``postgres`` system user when the
tests run as root, which initdb refuses to be). Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import redis

START_TIMEOUT_S = 20.0


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateRedis:
    def __init__(self, directory: Path, config: dict[str, str]) -> None:
        self.port = free_port()
        self.dir = directory
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis[str]:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir)]
        for name, value in self.config.items():
            args += [f"--{name}", value]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with closing(self.client()) as c:
                    c.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (its data is gone: no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server must be able to exit
            self.process.terminate()
            try:
                self.process.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=START_TIMEOUT_S)
        self.process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted by the kernel, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def private_redis(**config: str) -> Iterator[PrivateRedis]:
    """A running private redis-server; ``config`` as command-line options (``maxmemory="2mb"``)."""
    with tempfile.TemporaryDirectory(prefix="cf-redis-") as directory:
        server = PrivateRedis(Path(directory), {k.replace("_", "-"): v for k, v in config.items()})
        server.start()
        try:
            yield server
        finally:
            server.stop()


class PrivatePostgres:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.data = directory / "data"
        self._as_postgres = hasattr(os, "geteuid") and os.geteuid() == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop at once (``-m immediate``: like a crash; committed data survives)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private Postgres cluster (trust auth, user ``postgres``) in a temp directory."""
    with tempfile.TemporaryDirectory(prefix="cf-pg-") as directory:
        server = PrivatePostgres(Path(directory))
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop()
