"""Private Redis and Postgres servers for fault tests: started on free ports in a temporary
directory, stopped / paused / restarted by the test, and always torn down afterwards. They never
touch the machine's shared servers (127.0.0.1:5432 / 6379).

``private_redis()`` runs ``redis-server`` without persistence; ``private_postgres()`` creates a
cluster with ``initdb`` and runs it with ``pg_ctl`` (as the ``postgres`` system user when the
tests run as root, which initdb refuses to be). Every wait is bounded.

``network_namespace()`` makes a host "across a network" (root and iproute2): a network namespace
joined by a veth pair, whose link can be cut -- its address withdrawn, so packets to it vanish
without an answer, not even a reset, as in a partition -- and restored. ``private_postgres(netns=)``
runs the cluster there.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
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


@functools.cache
def network_namespaces_available() -> bool:
    """Can this process make network namespaces (root, iproute2, the capability)? Tried once."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip")):
        return False
    probe = f"cfprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=30, check=False)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30, check=False)
    return made.returncode == 0


@dataclass(frozen=True)
class NetworkNamespace:
    name: str
    #: The veth end inside the namespace and its address (/30 with ``host_ip`` on this side).
    ns_if: str
    ns_ip: str
    host_ip: str

    def command(self, *args: str) -> list[str]:
        """``args`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        """Withdraw the namespace's address: packets to it are dropped, nothing answers."""
        _ip(*self.command("ip", "addr", "del", f"{self.ns_ip}/30", "dev", self.ns_if))

    def restore(self) -> None:
        _ip(*self.command("ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if))


def _ip(*command: str) -> None:
    subprocess.run(list(command), check=True, capture_output=True, timeout=30)


@contextmanager
def network_namespace() -> Iterator[NetworkNamespace]:
    """A network namespace on a veth pair (a random 10.x.y.0/30), removed afterwards."""
    name = f"cf{secrets.token_hex(4)}"  # interface names: at most 15 characters
    host_if, ns_if = f"{name}h", f"{name}n"
    a, b = 100 + secrets.randbelow(100), secrets.randbelow(64) * 4
    host_ip, ns_ip = f"10.{a}.{b}.1", f"10.{a}.{b}.2"
    _ip("ip", "netns", "add", name)
    try:
        _ip("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("ip", "link", "set", ns_if, "netns", name)
        _ip("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("ip", "link", "set", host_if, "up")
        ns = NetworkNamespace(name, ns_if, ns_ip, host_ip)
        _ip(*ns.command("ip", "link", "set", "lo", "up"))
        _ip(*ns.command("ip", "link", "set", ns_if, "up"))
        ns.restore()
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30, check=False)


class PrivatePostgres:
    def __init__(self, directory: Path, netns: NetworkNamespace | None = None) -> None:
        self.port = free_port()
        self.dir = directory
        self.data = directory / "data"
        self.netns = netns
        self.host = netns.ns_ip if netns else "127.0.0.1"
        self._as_postgres = hasattr(os, "geteuid") and os.geteuid() == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        if self.netns is not None:
            command = self.netns.command(*command)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        if self.netns is not None:  # clients come from the other end of the veth pair
            with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
                hba.write(f"host all all {self.netns.host_ip}/32 trust\n")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={self.host} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        """Stop at once (``-m immediate``: like a crash; committed data survives)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def private_postgres(netns: NetworkNamespace | None = None) -> Iterator[PrivatePostgres]:
    """A running private Postgres cluster (trust auth, user ``postgres``) in a temp directory,
    listening on loopback or, with ``netns``, on that namespace's address."""
    with tempfile.TemporaryDirectory(prefix="cf-pg-") as directory:
        server = PrivatePostgres(Path(directory), netns)
        server.init()
        server.start()
        try:
            yield server
        finally:
            if server.running():
                server.stop()
