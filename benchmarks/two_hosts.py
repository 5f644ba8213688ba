"""The Python half of `benchmarks/two_hosts.sh` (two API hosts in network namespaces): the
small tools the shell script needs, and the probe that measures a change made through one
host reaching a subscriber connected to the other.

    python -m benchmarks.two_hosts ports HOST N        # N ports free on HOST (and port + 10000)
    python -m benchmarks.two_hosts forward LISTEN TARGET   # a TCP forwarder (host:port each)
    python -m benchmarks.two_hosts ready URL... [--within S]  # each URL answers 200
    python -m benchmarks.two_hosts probe --a URL --b URL --admin-token T --rep-token T
        --serials S1,S2,... [--contest NAME]

The probe, as a client outside both hosts: subscribes to the demo contest's
``leaderboardChanged`` over graphql-transport-ws on host B (and on host A, to compare), then
for each serial a partner rep claims a sale through host A (over the auto-approve limit, so
it waits for review) and the vendor admin approves it through host A (``saleClaimApprove``).
Latency: from sending the approval to the first push, on each host's socket, whose rows
include its amount. It prints each sample and the summary, and fails (exit 1) if a push
never came.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import websockets

from tests.ports import free_port

# Over the demo vendor's auto-approve limit (5,000.00 USD), so each claim waits for review.
AMOUNT = "7500.00"
AMOUNT_MINOR = 750_000
PUSH_TIMEOUT = 30.0

LIVE = """
subscription($id: ID!) {
  leaderboardChanged(contestId: $id, first: 10) { version rows { score participant { name } } }
}"""
CONTESTS = "{ contests(first: 20) { edges { node { id name status } } } }"
CREATE = """
mutation($i: SaleClaimCreateInput!) {
  saleClaimCreate(input: $i) { saleClaim { id state } userErrors { field code message } }
}"""
APPROVE = """
mutation($i: SaleClaimApproveInput!) {
  saleClaimApprove(input: $i) { saleClaim { id state } userErrors { field code message } }
}"""


# --- tools for the shell script -----------------------------------------------------------


def free_ports(host: str, count: int) -> list[int]:
    """``count`` ports free on ``host`` whose port + 10000 is free too (a Redis Cluster
    node's bus port), none meeting another's."""
    found: list[int] = []
    while len(found) < count:
        found.append(free_port(bus=True, taken=found, host=host))
    return found


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def forward(listen: str, target: str) -> None:
    """Accept on ``listen`` and pipe each connection to ``target`` (PostgreSQL listens on
    127.0.0.1 only, which a network namespace cannot reach)."""
    target_host, target_port = _address(target)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                target_host, target_port
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    host, port = _address(listen)
    server = await asyncio.start_server(connected, host, port)
    async with server:
        await server.serve_forever()


async def ready(urls: Sequence[str], within: float) -> bool:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        for url in urls:
            last = "no answer"
            while True:
                try:
                    response = await client.get(url)
                    if response.status_code == 200:
                        break
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    print(f"{url} not ready within {within:g} s (last: {last})", file=sys.stderr)
                    return False
                await asyncio.sleep(0.2)
    return True


# --- the probe ----------------------------------------------------------------------------


class Subscriber:
    """One graphql-transport-ws socket holding one ``leaderboardChanged`` subscription."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url.replace("http://", "ws://", 1).rstrip("/") + "/graphql"
        self.pushes: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, token: str, contest_id: str) -> dict[str, Any]:
        self._ws = await websockets.connect(
            self.url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            compression=None, max_size=None,
        )  # fmt: skip
        await self._ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": token}})
        )
        ack = json.loads(await self._ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"{self.name}: no connection_ack: {ack}")
        await self._ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": LIVE, "variables": {"id": contest_id}},
                }
            )
        )
        self._reader = asyncio.create_task(self._read())
        _, first = await asyncio.wait_for(self.pushes.get(), PUSH_TIMEOUT)
        return first

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            if message.get("type") == "next":
                board = message["payload"]["data"]["leaderboardChanged"]
                self.pushes.put_nowait((time.perf_counter(), board))
            elif message.get("type") == "ping":
                await self._ws.send(json.dumps({"type": "pong"}))
            elif message.get("type") in ("error", "complete"):
                print(f"{self.name}: the subscription ended: {message}", file=sys.stderr)
                return

    async def until(self, total: int) -> tuple[float, dict[str, Any]]:
        """The first push whose scores add up to at least ``total``."""
        while True:
            at, board = await asyncio.wait_for(self.pushes.get(), PUSH_TIMEOUT)
            if board_total(board) >= total:
                return at, board

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()


def board_total(board: dict[str, Any]) -> int:
    return sum(int(row["score"]) for row in board["rows"])


async def graphql(
    client: httpx.AsyncClient, url: str, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        url.rstrip("/") + "/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{url}: {response.status_code} {body}")
    return dict(body["data"])


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"min {ordered[0] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"
    )


async def probe(args: argparse.Namespace) -> int:
    serials = [s for s in args.serials.split(",") if s]
    async with httpx.AsyncClient(timeout=30) as client:
        contests = await graphql(client, args.a, args.admin_token, CONTESTS, {})
        found = [
            edge["node"]["id"]
            for edge in contests["contests"]["edges"]
            if edge["node"]["name"] == args.contest
        ]
        if not found:
            print(f"no contest named {args.contest!r} (was the demo seeded?)", file=sys.stderr)
            return 1
        contest_id = found[0]
        on_b, on_a = Subscriber("host B", args.b), Subscriber("host A", args.a)
        try:
            total = board_total(await on_b.open(args.admin_token, contest_id))
            await on_a.open(args.admin_token, contest_id)
            print(f"subscribed on host B ({args.b}) and host A ({args.a}) to {args.contest!r}")
            cross: list[float] = []
            same: list[float] = []
            responses: list[float] = []
            for n, serial in enumerate(serials, 1):
                claim = {
                    "serials": [serial], "customerName": "Two Hosts Ltd",
                    "invoiceNumber": f"2H-{serial}", "saleDate": str(datetime.now(UTC).date()),
                    "amount": {"amount": AMOUNT, "currency": "USD"},
                }  # fmt: skip
                created = (await graphql(client, args.a, args.rep_token, CREATE, {"i": claim}))[
                    "saleClaimCreate"
                ]
                if created["userErrors"] or created["saleClaim"]["state"] not in (
                    "UNDER_REVIEW", "NEEDS_PROOF",
                ):  # fmt: skip
                    print(f"claim {serial}: {created}", file=sys.stderr)
                    return 1
                total += AMOUNT_MINOR
                sent = time.perf_counter()
                approval = {"id": created["saleClaim"]["id"], "note": "two hosts"}
                approved = (
                    await graphql(client, args.a, args.admin_token, APPROVE, {"i": approval})
                )["saleClaimApprove"]
                answered = time.perf_counter()
                if approved["userErrors"] or approved["saleClaim"]["state"] != "APPROVED":
                    print(f"approval {serial}: {approved}", file=sys.stderr)
                    return 1
                try:
                    (at_b, board), (at_a, _) = await asyncio.gather(
                        on_b.until(total), on_a.until(total)
                    )
                except TimeoutError:
                    print(f"sale {n}: no push within {PUSH_TIMEOUT:g} s", file=sys.stderr)
                    return 1
                cross.append(at_b - sent)
                same.append(at_a - sent)
                responses.append(answered - sent)
                print(
                    f"sale {n:>3}: approved through A in {(answered - sent) * 1000:6.1f} ms; "
                    f"pushed to B's subscriber after {(at_b - sent) * 1000:6.1f} ms, "
                    f"A's after {(at_a - sent) * 1000:6.1f} ms (version {board['version']})"
                )
                await asyncio.sleep(args.pause)
        finally:
            await on_b.close()
            await on_a.close()
    print(f"saleClaimApprove through host A (HTTP round trip): {summary(responses)}")
    print(f"approval through host A -> push on host B (cross-host): {summary(cross)}")
    print(f"approval through host A -> push on host A (same host):  {summary(same)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.two_hosts")
    commands = parser.add_subparsers(dest="command", required=True)
    ports = commands.add_parser("ports")
    ports.add_argument("host")
    ports.add_argument("count", type=int)
    fwd = commands.add_parser("forward")
    fwd.add_argument("listen")
    fwd.add_argument("target")
    rdy = commands.add_parser("ready")
    rdy.add_argument("urls", nargs="+")
    rdy.add_argument("--within", type=float, default=180.0)
    prb = commands.add_parser("probe")
    prb.add_argument("--a", required=True, help="host A's base URL (http://ip:port)")
    prb.add_argument("--b", required=True, help="host B's base URL")
    prb.add_argument("--admin-token", required=True)
    prb.add_argument("--rep-token", required=True)
    prb.add_argument("--serials", required=True, help="comma-separated, shipped to the rep")
    prb.add_argument("--contest", default="Northwind Q4 Sprint")
    prb.add_argument("--pause", type=float, default=0.5, help="seconds between sales")
    args = parser.parse_args(argv)
    if args.command == "ports":
        print(" ".join(map(str, free_ports(args.host, args.count))))
        return 0
    if args.command == "forward":
        try:
            asyncio.run(forward(args.listen, args.target))
        except KeyboardInterrupt:
            pass
        return 0
    if args.command == "ready":
        return 0 if asyncio.run(ready(args.urls, args.within)) else 1
    return asyncio.run(probe(args))


if __name__ == "__main__":
    sys.exit(main())
