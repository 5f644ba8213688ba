"""The test support's local Redis Cluster: a node whose port another process took between
the check and redis-server's bind starts again on another port (a CI run failed on a node
that never answered, after 30 s)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.redis_cluster import LocalCluster, _client, _cluster_port


def test_a_node_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    taken = _cluster_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        cluster.ports = [taken]
        cluster._start_node(taken)
        try:
            cluster._node_up(0, timeout=10)
            port = cluster.ports[0]
            assert port != taken
            assert _client(port).ping()
            assert list(cluster.processes) == [port]
        finally:
            cluster.stop()


def test_cluster_ports_and_their_bus_ports_never_meet() -> None:
    ports: list[int] = []
    for _ in range(50):
        ports.append(_cluster_port(ports))
    every = [q for p in ports for q in (p, p + 10000)]
    assert len(set(every)) == len(every)
