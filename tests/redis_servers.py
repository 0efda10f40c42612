"""Real Redis for tests: `redis-server` processes on free loopback ports, a 3-master cluster,
and a TCP proxy that can cut or re-point connections (outages, failovers).

No persistence (`--save "" --appendonly no`); every process is killed by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

__all__ = ["RedisCluster3", "RedisServer", "TcpProxy", "free_port", "redis_available", "wait_for"]

HOST = "127.0.0.1"


def redis_available() -> bool:
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _die_with_parent() -> None:
    """In the child: SIGKILL it when the test process dies, even by SIGKILL (Linux).

    The signal follows the thread that forked: start servers from the main thread.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port(*, below: int = 65536) -> int:
    """A free loopback port (under `below`: a cluster node also needs port + 10000)."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port < below:
            return port


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll a synchronous condition until it is truthy (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


def write_tls_files(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem); returns the cert path."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gamesync-test-redis")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "cert.pem"


class RedisServer:
    """One redis-server on a loopback port; kill and restart it on the same port.

    With `tls=True` it listens with TLS only (self-signed certificate for 127.0.0.1,
    `tls_ca` is the file a client trusts).
    """

    def __init__(
        self, *, port: int | None = None, cluster: bool = False, tls: bool = False
    ) -> None:
        self.port = port or free_port(below=55_536 if cluster else 65_536)
        self.cluster = cluster
        self.dir = Path(tempfile.mkdtemp(prefix=f"gamesync-redis-{self.port}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls_ca = write_tls_files(self.dir) if tls else None

    @property
    def url(self) -> str:
        if self.tls_ca is not None:
            return f"rediss://{HOST}:{self.port}/0?ssl_ca_certs={self.tls_ca}"
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> redis.Redis:
        if self.tls_ca is not None:
            return redis.Redis(
                host=HOST, port=self.port, socket_timeout=5, protocol=2,
                ssl=True, ssl_ca_certs=str(self.tls_ca),
            )  # fmt: skip
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5, protocol=2)

    def start(self) -> RedisServer:
        ports = ["--port", str(self.port)]
        if self.tls_ca is not None:
            ports = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.dir / "cert.pem"),
                "--tls-key-file", str(self.dir / "key.pem"),
                "--tls-ca-cert-file", str(self.tls_ca),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        args = [
            "redis-server",
            *ports,
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.dir / "nodes.conf"),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # only prctl: safe between fork and exec
        )
        client = self.client()
        proc = self.proc

        def up() -> bool:
            if proc.poll() is not None:
                log = self.dir / "redis.log"
                raise RuntimeError(f"redis-server exited: {log.read_text()[-500:]}")
            return bool(client.ping())

        try:
            wait_for(up, 10, f"redis-server on {self.port}")
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to connected clients beyond the TCP reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster3:
    """Three cluster-enabled masters (no replicas) joined with `redis-cli --cluster create`."""

    def __init__(self) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(3)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster3:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"{HOST}:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        clients = [n.client() for n in self.nodes]
        try:
            wait_for(
                lambda: all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients),
                20,
                "cluster_state:ok",
            )
        finally:
            for c in clients:
                c.close()

    def node_id(self, node: RedisServer) -> str:
        with contextlib.closing(node.client()) as client:
            return str(client.execute_command("CLUSTER", "MYID").decode())

    def owner_of(self, slot: int) -> RedisServer:
        with contextlib.closing(self.nodes[0].client()) as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(slot)

    def move_slot(self, slot: int, target: RedisServer) -> None:
        """Migrate one slot (and its keys) to `target`, as `redis-cli --cluster reshard` does."""
        source = self.owner_of(slot)
        if source is target:
            return
        src_id, dst_id = self.node_id(source), self.node_id(target)
        with contextlib.closing(source.client()) as src, contextlib.closing(target.client()) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys)
            for node in (target, source, *[n for n in self.nodes if n not in (source, target)]):
                with contextlib.closing(node.client()) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class TcpProxy:
    """A loopback TCP proxy in the test's loop: re-point new connections, or cut everything.

    `retarget(port)` sends new connections elsewhere while existing ones stay where they were
    (a failover seen by a client that keeps its old socket); `cut()` closes every connection
    and refuses new ones until `restore()` (Redis unreachable while it still runs).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.accepting = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def retarget(self, port: int) -> None:
        self.target_port = port

    def cut(self) -> None:
        self.accepting = False
        for writer in list(self._writers):
            writer.transport.abort()

    def restore(self) -> None:
        self.accepting = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if not self.accepting:  # cut while we were connecting upstream
            up_writer.transport.abort()
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(dst)
            dst.transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
