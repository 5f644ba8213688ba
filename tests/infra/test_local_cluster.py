"""The ports of the servers the tests start (tests/ports.py) and the local Redis Cluster's
nodes: a node whose port another process took between the check and redis-server's bind
starts again on another port (a CI run failed on a node that never answered, after 30 s)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.ports import ephemeral_floor, free_port
from tests.redis_cluster import LocalCluster, _client

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


def test_a_node_whose_port_was_taken_meanwhile_starts_on_another(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    taken = free_port(bus=True)
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


def test_cluster_ports_and_bus_ports_never_meet_and_stay_below_the_ephemeral_range() -> None:
    ports: list[int] = []
    for _ in range(50):
        ports.append(free_port(bus=True, taken=ports))
    every = [q for p in ports for q in (p, p + 10000)]
    assert len(set(every)) == len(every)
    assert max(every) < ephemeral_floor()


def test_a_free_port_is_below_the_ephemeral_range_and_not_taken() -> None:
    first = free_port()
    assert free_port(taken=[first]) != first
    assert all(free_port() < ephemeral_floor() for _ in range(50))
