"""A real local Redis Cluster for tests (CHANNELBOARD_TEST_REDIS_CLUSTER=1): three masters
with a replica each, `redis-server --cluster-enabled yes` on free loopback ports with their
data in a temporary folder, joined by `redis-cli --cluster create`, stopped after the run."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from infra.redis import redis_server_binary
from tests.ports import free_port

MASTERS = 3
# A node that stops answering is failed over after this long (the default, 15 s, would make
# a failover test wait that long).
NODE_TIMEOUT_MS = 2000


def _client(port: int) -> Redis:
    return Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=5)


def _answers(port: int) -> bool:
    """PING within a second, no retries: whatever holds a port it took from a node may never
    answer, and the default client would wait 5 s four times."""
    probe = Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    try:
        return bool(probe.ping())
    finally:
        probe.close()


def _node_id(port: int) -> str:
    node_id = _client(port).execute_command("CLUSTER", "MYID")
    return node_id.decode() if isinstance(node_id, bytes) else str(node_id)


@dataclass
class LocalCluster:
    data_dir: Path
    ports: list[int] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """A seed node: the client discovers the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> LocalCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("a local Redis Cluster needs redis-cli on PATH")
        self.ports = []
        for _ in range(MASTERS * 2):
            self.ports.append(free_port(bus=True, taken=self.ports))
        try:
            self._start_all(cli, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self, cli: str, timeout: float) -> None:
        for port in self.ports:
            self._start_node(port)
        for index in range(len(self.ports)):
            self._node_up(index, timeout)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        self.wait_ready(timeout)

    def _node_up(self, index: int, timeout: float, attempts: int = 5) -> None:
        """Wait for the ``index``th node to answer. One that exits first lost its port (or
        its bus port) to another process between the check and its bind: it starts again
        on another port, up to ``attempts`` times, else the error carries its log."""
        for attempt in range(1, attempts + 1):
            port = self.ports[index]
            process = self.processes[port]

            def up(p: int = port, proc: subprocess.Popen[bytes] = process) -> bool:
                return proc.poll() is not None or _answers(p)

            self._wait(up, timeout, f"node {port} to start")
            if process.poll() is None:
                return
            if attempt == attempts:
                raise RuntimeError(f"node {port} exited at start: {self._log_tail(port)}")
            del self.processes[port]
            self.ports[index] = free_port(bus=True, taken=self.ports)
            self._start_node(self.ports[index])

    def _log_tail(self, port: int, lines: int = 5) -> str:
        try:
            text = (self.data_dir / str(port) / "redis.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def _start_node(self, port: int) -> None:
        node_dir = self.data_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", str(node_dir),
             "--save", "", "--appendonly", "no", "--logfile", str(node_dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Every running node sees the cluster as ok (all slots served), every node agrees
        on who serves which slots, and every replica is in sync with its master."""

        def ready() -> bool:
            if len({self._slot_owners(port) for port in self.running}) != 1:
                return False
            for port in self.running:
                replication = _client(port).info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
                info = _client(port).execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text:
                    return False
            return len(self.masters()) == MASTERS

        self._wait(ready, timeout, "the cluster to be ready")

    @staticmethod
    def _slot_owners(port: int) -> tuple[tuple[int, int, int], ...]:
        slots = _client(port).execute_command("CLUSTER", "SLOTS")
        return tuple(
            sorted((int(first), int(last), int(primary[1])) for first, last, primary, *_ in slots)
        )

    @property
    def running(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def masters(self) -> list[int]:
        return [p for p in self.running if _client(p).info("replication")["role"] == "master"]

    def replica_of(self, master: int) -> int:
        for port in self.running:
            info = _client(port).info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master:
                return port
        raise LookupError(f"no replica of {master}")

    def node_of(self, key: str) -> int:
        """The port of the master that owns ``key``'s slot."""
        client = _client(self.running[0])
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for first, last, primary, *_replicas in client.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                return int(primary[1])
        raise LookupError(f"no node serves slot {slot}")

    def failover(self, master: int, timeout: float = 30.0) -> int:
        """Promote ``master``'s replica (CLUSTER FAILOVER on the replica, as an operator
        does); returns the new master's port once every node agrees that it serves the
        slots ``master`` served and the cluster is ok again. The replica saying it is the
        master is not enough: failed over again within about four node timeouts of its last
        election (a test failing a shard back and forth), it may "win" on that election's
        votes with its old config epoch, which the other side's newer one beats a moment
        later, and it is a replica again, the slots never moved. Asked again until it holds."""
        replica = self.replica_of(master)
        before = self._slot_owners(master)
        after = tuple(
            (first, last, replica if owner == master else owner) for first, last, owner in before
        )

        def took_over() -> bool:
            try:
                return all(self._slot_owners(port) == after for port in self.running)
            except Exception:  # noqa: BLE001 - a node between roles: not yet
                return False

        deadline = time.monotonic() + timeout
        while True:
            if _client(replica).info("replication")["role"] != "master":
                _client(replica).execute_command("CLUSTER", "FAILOVER")  # again, if one lapsed
            self._wait(took_over, 5, f"{replica} to take over from {master}", fail=False)
            if took_over():
                self.wait_ready(timeout)
                if took_over():
                    return replica
            if time.monotonic() > deadline:
                raise RuntimeError(f"{replica} did not take over from {master}")

    def kill(self, master: int, timeout: float = 30.0) -> int:
        """Kill ``master`` (SIGKILL, as a crashed host): its replica takes over once the
        others have not heard from it for the node timeout. Then the killed node is started
        again (it rejoins as a replica, so later failovers have one). Returns the new
        master's port."""
        replica = self.replica_of(master)
        process = self.processes[master]
        process.kill()
        process.wait()
        self._wait(
            lambda: _client(replica).info("replication")["role"] == "master",
            timeout,
            f"{replica} to take over from the killed {master}",
        )
        self.wait_ready(timeout)
        self._start_node(master)  # its nodes.conf remembers the cluster
        self.wait_ready(timeout)
        return replica

    def slot_of(self, key: str) -> int:
        return int(_client(self.running[0]).execute_command("CLUSTER", "KEYSLOT", key))

    def migrate(
        self,
        key: str,
        to: int,
        *,
        also: Sequence[str] = (),
        while_migrating: Callable[[], None] | None = None,
        timeout: float = 30.0,
    ) -> int:
        """Move ``key``'s slot, and its keys, from its master to the master ``to``, as an
        operator's ``redis-cli --cluster reshard`` does for each slot: the target IMPORTING,
        the source MIGRATING, the keys MIGRATEd (``key`` first, then those of ``also``
        (keys of the same slot), each if it exists: the reshard's batches may split a
        slot's keys anyhow), then the slot assigned to the target on the target, the source
        (which then drops its subscribers' shard channels of the slot with a SUNSUBSCRIBE)
        and the other masters. ``while_migrating`` runs once those have moved and the rest
        has not (a command on keys of both sides, or on one missing on either, meets
        TRYAGAIN then). Returns the source's port once every node agrees."""
        slot = self.slot_of(key)
        source = self.node_of(key)
        if source == to:
            raise ValueError(f"{key!r} is on {to} already")
        ids = {port: _node_id(port) for port in self.masters()}
        target_client, source_client = _client(to), _client(source)
        if any(self.slot_of(name) != slot for name in also):
            raise ValueError("the keys of also must be of key's slot")
        # Which exist is asked before MIGRATING, when a missing key would answer ASK.
        first = [name for name in (key, *also) if source_client.exists(name)]
        target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to])

        def move(*keys: bytes | str) -> None:
            source_client.execute_command(
                "MIGRATE", "127.0.0.1", to, "", 0, 5000, "REPLACE", "KEYS", *keys
            )

        if first:
            move(*first)
        if while_migrating is not None:
            while_migrating()
        while keys := source_client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            move(*keys)
        for port in (to, source, *(p for p in ids if p not in (to, source))):
            _client(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[to])
        self.wait_ready(timeout)
        return source

    def flush(self, port: int) -> None:
        """Lose one master's data (as a restart without persistence does); its replica
        follows."""
        _client(port).flushall()

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()

    @staticmethod
    def _wait(check: object, timeout: float, what: str, *, fail: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():  # type: ignore[operator]
                    return
            except Exception:  # noqa: BLE001, S110 - not ready yet
                pass
            if time.monotonic() > deadline:
                if not fail:
                    return
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)
