"""Live fan-out: N websocket subscribers on one contest while sales are scored at R/s.

Reports p50/p99 from the commit of an approval to a subscriber receiving standings that
include it (a push with a version at or above the one the credit produced; versions are
read atomically with the rows), and server memory per connected subscriber. The latency is
split where the contest's version notice goes out on pub/sub (the generator listens on the
channel as the servers' feeds do): commit to notice (the dispatcher's pick-up, scoring,
publish) and notice to receipt (the fan-out's wait for a refresh, its reads, rendering,
the pass over the sockets, the client process).

    .venv/bin/python -m benchmarks.leaderboard_fanout [--subscribers 5000] [--rate 50]
        [--duration 30] [--clients 2] [--servers 1] [--workers 1]
        [--dispatch generator|process] [--program]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1/EMPTY_DB] [--cluster]
        [--trace-memory]

--servers N starts N API processes (uvicorn, each on its own port, as behind a load
balancer); every client process spreads its connections over them in turn, so each serves
subscribers / N. Memory per subscriber is the growth of all API processes' resident memory
(RSS, children included) from before the first connection to all subscribed and idle,
divided by the subscribers. Besides latency (p50/p95/p99/max over every (approval,
subscriber) pair) the run checks the results: every subscriber's versions never go back,
and every subscriber's last push carries the board's final version.

--trace-memory starts the API processes under tracemalloc (benchmarks/traced_server.py)
and prints the allocation sites that grew most per subscriber (slower; memory figures of
such a run are not comparable).

--cluster runs it on a private local Redis Cluster (three masters with a replica each;
sharded pub/sub) instead of one embedded redis-server.

uvicorn serves (one worker unless --workers) with CHANNELBOARD_DISPATCH=external: it only
serves. The clients (minimal asyncio websocket clients, graphql-transport-ws, one
subscription each, per-message deflate off) and the event generator run as separate
processes on the same machine. The generator commits approvals at the rate, and:

--dispatch generator (default): dispatches them itself right after each commit, with the
leaderboard handlers only, as the approving API process would: scoring to delivery, with
no earnings crediting.

--dispatch process: the production layout for a steady stream of approvals. It only wakes
a `channelboard dispatch` process, which runs every handler the app registers, earnings
crediting included. The k-th approval is in the board at version v0 + k (one contest that
credits every approval, dispatched in commit order); the run checks that. --program gives
the vendor an earnings program with tiers, so crediting writes entries too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import itertools
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import uvloop

from benchmarks.common import bench_redis, machine_speed, percentile
from tests.ports import free_port

QUERY = """subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 10) {
  version rows { rank score participant { name } } me { rank score gapToNext } } }"""


def rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn's workers), in KiB."""
    total = 0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used by a process and its children so far."""
    total = 0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found + [g for c in found for g in _children(c)]


# ---------------------------------------------------------------- client process
class BenchClient(asyncio.Protocol):
    """A minimal graphql-transport-ws client: handshake, connection_init, subscribe, then
    only frame parsing and a byte search for the version. A full client per connection
    (websockets + json) cost the shared cores more than the server it was measuring."""

    def __init__(
        self, token: str, contest: str, log: list[tuple[int, int]], query: str = QUERY
    ) -> None:
        self.token, self.contest, self.log, self.query = token, contest, log, query
        self.buf = bytearray()
        self.upgraded = False
        self.subscribed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16))
        self.transport.write(
            b"GET /graphql HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self, opcode: int, payload: bytes) -> None:
        """A client frame (masked, as RFC 6455 requires)."""
        assert self.transport is not None
        assert len(payload) < 1 << 16
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        n = len(payload)
        head = (
            bytes((0x80 | opcode, 0x80 | n))
            if n < 126
            else struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        )
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[:end]:
                raise ConnectionError(bytes(buf[:end]).decode())
            del buf[: end + 4]
            self.upgraded = True
            init = {"type": "connection_init", "payload": {"Authorization": self.token}}
            self.send(1, json.dumps(init).encode())
        while len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + n:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[off : off + n])
            del buf[: off + n]
            if opcode == 1:
                self.text(payload, now)
            elif opcode == 9:
                self.send(10, payload)  # uvicorn's keepalive ping

    def text(self, payload: bytes, now: int) -> None:
        at = payload.find(b'"version":')
        if at >= 0:
            end = at + 10
            while payload[end] in b"0123456789":
                end += 1
            self.log.append((int(payload[at + 10 : end]), now))
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        elif b'"connection_ack"' in payload:
            query = {"query": self.query, "variables": {"id": self.contest}}
            self.send(1, json.dumps({"id": "1", "type": "subscribe", "payload": query}).encode())
        elif b'"ping"' in payload:
            self.send(1, b'{"type":"pong"}')


async def client_main(
    addresses: str, tokens: list[str], contest: str, seconds: float, out: str
) -> None:
    """Connects ``tokens`` subscribers, the i-th to the i-th of the comma-separated
    ``addresses`` in turn."""
    loop = asyncio.get_running_loop()
    servers = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in addresses.split(",")]
    logs: list[list[tuple[int, int]]] = [[] for _ in tokens]
    protocols: list[BenchClient] = []

    async def one(index: int) -> None:
        host, port = servers[index % len(servers)]
        _, proto = await loop.create_connection(
            lambda: BenchClient(tokens[index], contest, logs[index]), host, port
        )
        protocols.append(proto)
        await proto.subscribed

    # Ramp up in batches, each subscribed (first snapshot received) before the next, so
    # the measurement is of steady state, not of a connection storm.
    for i in range(0, len(tokens), 50):
        await asyncio.gather(*(one(j) for j in range(i, min(i + 50, len(tokens)))))
    Path(out + ".ready").write_text("1")  # noqa: ASYNC240
    await until_final(seconds, out, logs)
    for proto in protocols:
        if proto.transport is not None:
            proto.transport.abort()
    Path(out).write_text(json.dumps(logs))  # noqa: ASYNC240


async def until_final(seconds: float, out: str, logs: list[list[tuple[int, int]]]) -> None:
    """Waits until the orchestrator has named the board's final version (``announce_final``,
    once the approvals are done; it stops this process if it fails first), then at most
    ``seconds`` more, until every subscriber has received a push at or above it. (A deadline
    counted from the connections, as before, passed before the approvals' pushes arrived on a
    loaded machine.)"""
    loop = asyncio.get_running_loop()
    final = Path(out + ".final")
    while not final.exists():  # noqa: ASYNC110, ASYNC240 - another process writes it
        await asyncio.sleep(0.1)
    version = int(final.read_text())  # noqa: ASYNC240
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if all(log and max(v for v, _ in log) >= version for log in logs):
            return
        await asyncio.sleep(0.1)


def announce_final(outs: list[str], events: list[tuple[int, int, int | None]]) -> None:
    """Tells the client processes the board's final version (0 when nothing was approved)."""
    final = str(max((v for _, v, _ in events), default=0))
    for out in outs:
        Path(out + ".final.tmp").write_text(final)
        Path(out + ".final.tmp").rename(out + ".final")


# ---------------------------------------------------------------- orchestrator
async def seed(
    db_url: str, subscribers: int, partners_count: int
) -> tuple[str, list[str], list[str]]:
    from api import migrations  # noqa: PLC0415
    from api.auth import issue_token  # noqa: PLC0415
    from api.settings import JWTSettings  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from leaderboards import service  # noqa: PLC0415
    from partners import service as partners  # noqa: PLC0415
    from partners.models import User  # noqa: PLC0415
    from partners.roles import Principal, Role  # noqa: PLC0415
    from schema.relay import to_global_id  # noqa: PLC0415

    await migrations.upgrade(db_url)
    db = Database(db_url)
    clock = SystemClock()
    async with db.transaction() as session:
        vendor = await partners.create_vendor(session, clock, name="Fanout", slug="fanout")
        partner_rows = [
            await partners.create_partner(
                session, clock, vendor_id=vendor.id, name=f"Partner {i:03d}", region="EMEA"
            )
            for i in range(partners_count)
        ]
        users = [
            User(
                vendor_id=vendor.id,
                partner_id=partner_rows[i % partners_count].id,
                email=f"rep{i}@fanout.example",
                display_name=f"Rep {i}",
                role=Role.PARTNER_REP,
                created_at=clock.now(),
            )  # fmt: skip
            for i in range(subscribers)
        ]
        session.add_all(users)
        admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
        now = datetime.now(UTC)
        contest = await service.create_contest(
            session, admin, clock,
            settings=service.ContestSettings(
                name="Fanout", starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1)
            ),
        )  # fmt: skip
        await service.publish_contest(session, admin, clock, contest_id=contest.id)
    await db.dispose()
    jwt = JWTSettings()
    tokens = [issue_token(jwt, u, ttl=timedelta(hours=3)) for u in users]
    return str(to_global_id("Contest", contest.id)), tokens, [str(p.id) for p in partner_rows]


async def add_program(env: dict[str, str]) -> None:
    """An earnings program with tiers for the seeded vendor, as one paying commissions
    would have (crediting then writes entries, not only the source row)."""
    from sqlmodel import select  # noqa: PLC0415

    from api.settings import Settings  # noqa: PLC0415
    from earnings import programs  # noqa: PLC0415
    from earnings.programs import BaseRate, Rules, Tier  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from partners.models import Vendor  # noqa: PLC0415
    from partners.roles import Principal, Role  # noqa: PLC0415

    db = Database(Settings.from_env(env).database_url)
    async with db.transaction() as session:
        vendor = (await session.exec(select(Vendor))).one()
        rules = Rules(
            base_rates=(BaseRate(800),),
            tiers=(Tier("Silver", 1_000_000, 100), Tier("Gold", 2_500_000, 200)),
        )
        await programs.create_program(
            session, Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN), SystemClock(),
            name="Bench", currency="USD", rules=rules,
            effective_from=datetime.now(UTC) - timedelta(days=30),
        )  # fmt: skip
    await db.dispose()


async def generate(
    env: dict[str, str], rate: float, seconds: float, by_process: bool
) -> list[tuple[int, int, int | None]]:
    """Approve sales at `rate`/s, committed then dispatched by this process as the API
    process approving them would, or (``by_process``) handed to the dispatcher process;
    returns (commit time ns, version that includes it, when this process heard the first
    notice of a version that includes it)."""
    from sqlmodel import select  # noqa: PLC0415

    from api.cli.wiring import wiring  # noqa: PLC0415
    from api.settings import Settings  # noqa: PLC0415
    from catalogue import demo as catalogue_demo  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.outbox import Dispatcher  # noqa: PLC0415
    from leaderboards import handlers as leaderboards_handlers  # noqa: PLC0415
    from leaderboards.demo import approve_demo_sale  # noqa: PLC0415
    from leaderboards.models import Contest  # noqa: PLC0415
    from partners.models import Partner, Vendor  # noqa: PLC0415

    settings = Settings.from_env(env)
    out: list[tuple[int, int]] = []
    clock = SystemClock()
    async with wiring(settings) as w:
        # Inline, only the leaderboard handlers: what is measured is scoring to delivery;
        # crediting earnings (~10-20 ms a sale) would cap this process below 50/s.
        outbox = Dispatcher(w.db, clock)
        if by_process:
            outbox.hand_off(w.hub)
        else:
            outbox.register_all(leaderboards_handlers.handlers(w.leaderboards))
        async with w.db.transaction() as session:
            vendor = (await session.exec(select(Vendor))).one()
            products = list((await catalogue_demo.seed(session, clock, vendor)).values())
        async with w.db.session() as session:
            partners = list(await session.exec(select(Partner)))
            contest_id = (await session.exec(select(Contest.id))).one()
        first_version = await w.leaderboards.boards.version(contest_id)
        # When each version's notice reached this process over pub/sub, as it reaches
        # the servers' feeds: splits commit-to-receipt into dispatch and fan-out.
        heard: dict[int, int] = {}
        channel = w.leaderboards.channel(contest_id)
        listening = w.hub.listen(channel, maxsize=100_000)
        listener = await listening.__aenter__()

        async def note() -> None:
            async for message in listener:
                if message is not None:
                    heard.setdefault(int(message), time.time_ns())

        noting = asyncio.create_task(note())
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            async with w.db.transaction() as session:
                await approve_demo_sale(
                    session, clock, vendor_id=vendor.id, partner=random.choice(partners),
                    rep=None, product=random.choice(products), units=random.randint(1, 5),
                )  # fmt: skip
            committed = time.time_ns()
            n += 1
            if by_process:
                outbox.notify()
                out.append((committed, first_version + n))
            else:
                await outbox.dispatch_pending()
                out.append((committed, await w.leaderboards.boards.version(contest_id)))
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if by_process:  # every approval credited once, in order: versions v0 + 1 ... v0 + n
            for _ in range(600):
                if await w.leaderboards.boards.version(contest_id) >= first_version + n:
                    break
                await asyncio.sleep(0.1)
            final = await w.leaderboards.boards.version(contest_id)
            if final != first_version + n:
                raise RuntimeError(f"board at version {final}, expected {first_version + n}")
        await asyncio.sleep(0.5)  # the last notices
        noting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await noting
        await listening.__aexit__(None, None, None)
    # An approval's notice: the first one at or above the version that includes it.
    versions = sorted(heard)
    earliest = list(itertools.accumulate((heard[v] for v in reversed(versions)), min))[::-1]
    to_notice = []
    noticed: list[int | None] = []
    for committed, version in out:
        i = bisect.bisect_left(versions, version)
        noticed.append(earliest[i] if i < len(versions) else None)
        if i < len(versions):
            to_notice.append((earliest[i] - committed) / 1e9)
    if to_notice:
        ms = {p: percentile(to_notice, p) * 1000 for p in (50, 95, 99)}
        print(f"commit to the version's pub/sub notice (dispatch, scoring, publish) over "
              f"{len(to_notice)} approvals: p50 {ms[50]:.0f} ms, p95 {ms[95]:.0f} ms, "
              f"p99 {ms[99]:.0f} ms, max {max(to_notice) * 1000:.0f} ms")  # fmt: skip
    return [(c, v, n) for (c, v), n in zip(out, noticed, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--partners", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--servers", type=int, default=1, help="API processes, one port each")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    parser.add_argument("--dispatch", choices=("generator", "process"), default="generator")
    parser.add_argument("--program", action="store_true", help="add an earnings program")
    parser.add_argument(
        "--database-url", help="an empty database (default: a temporary SQLite file)"
    )
    parser.add_argument("--cluster", action="store_true", help="on a local Redis Cluster")
    parser.add_argument(
        "--trace-memory", nargs="?", const="", metavar="DIR",
        help="tracemalloc the servers (snapshots kept in DIR if given)",
    )  # fmt: skip
    parser.add_argument(
        "--client", nargs=5, metavar=("ADDRS", "TOKENS", "CONTEST", "SECONDS", "OUT")
    )
    args = parser.parse_args()
    if args.client:
        addresses, token_file, contest, seconds, out = args.client
        tokens = json.loads(Path(token_file).read_text())
        uvloop.run(client_main(addresses, tokens, contest, float(seconds), out))
        return

    with (
        tempfile.TemporaryDirectory(prefix="cbfanout-") as tmp,
        bench_redis(cluster=args.cluster) as redis_url,
    ):
        db_url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'fanout.db'}"
        env = {
            **os.environ, "CHANNELBOARD_ENV": "test", "CHANNELBOARD_VAR_DIR": tmp,
            "CHANNELBOARD_DATABASE_URL": db_url, "CHANNELBOARD_REDIS_URL": redis_url,
            "CHANNELBOARD_REDIS_CLUSTER": "true" if args.cluster else "false",
            "CHANNELBOARD_REDIS_NAMESPACE": f"fanout-{uuid.uuid4().hex[:6]}",
            "CHANNELBOARD_LOG_LEVEL": "warning",
            # The servers only serve: no dispatcher of their own racing the generator's.
            "CHANNELBOARD_DISPATCH": "external",
        }  # fmt: skip
        contest, tokens, _partners = asyncio.run(seed(db_url, args.subscribers, args.partners))
        if args.program:
            asyncio.run(add_program(env))
        ports = [free_port() for _ in range(args.servers)]
        tracing = args.trace_memory is not None
        trace = Path(args.trace_memory or tmp) / "trace"
        runner = ["benchmarks.traced_server", str(trace)] if tracing else ["uvicorn"]
        servers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    *runner,
                    "api.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--ws-per-message-deflate",
                    "false",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--backlog",
                    "4096",
                    "--workers",
                    str(args.workers),
                ],
                env=env,
            )  # fmt: skip
            for port in ports
        ]
        addresses = [f"127.0.0.1:{port}" for port in ports]
        clients: list[subprocess.Popen[bytes]] = []
        dispatcher = None
        if args.dispatch == "process":
            dispatcher = subprocess.Popen([sys.executable, "-m", "api", "dispatch"], env=env)

        def servers_rss() -> int:
            return sum(rss_kb(s.pid) for s in servers)

        def servers_cpu() -> float:
            return sum(cpu_s(s.pid) for s in servers)

        try:
            for server, address in zip(servers, addresses, strict=True):
                deadline = time.monotonic() + 180  # (a loaded machine, tracemalloc)
                while time.monotonic() < deadline and server.poll() is None:
                    try:
                        if httpx.get(f"http://{address}/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.2)
                else:
                    raise RuntimeError(f"a server did not start (exit code {server.poll()})")
            time.sleep(1)
            if tracing:
                _snapshot(servers, trace, 0)
            base_rss = servers_rss()
            per = -(-len(tokens) // args.clients)
            outs = []
            t0 = time.perf_counter()
            for c in range(args.clients):
                token_file = Path(tmp) / f"tokens{c}.json"
                token_file.write_text(json.dumps(tokens[c * per : (c + 1) * per]))
                out = str(Path(tmp) / f"client{c}.json")
                outs.append(out)
                clients.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.leaderboard_fanout",
                            "--client",
                            ",".join(addresses),
                            str(token_file),
                            contest,
                            str(args.duration + 8),
                            out,
                        ],
                        env=env,
                    )  # fmt: skip
                )
            while not all(Path(o + ".ready").exists() for o in outs):
                if any(c.poll() is not None for c in clients):
                    raise RuntimeError("a client process died while connecting")
                time.sleep(0.5)
            connect_s = time.perf_counter() - t0
            time.sleep(2)
            subscribed_rss = servers_rss()
            if tracing:
                _snapshot(servers, trace, 1)
                _report_growth(trace, len(servers), len(tokens))
            print(f"{len(tokens):,} subscribers connected and subscribed in {connect_s:.1f} s "
                  f"to {args.servers} server(s) x {args.workers} worker(s)")  # fmt: skip
            print(
                f"server RSS: {base_rss / 1024:.1f} MiB before, {subscribed_rss / 1024:.1f} MiB "
                f"with all subscribed: {(subscribed_rss - base_rss) / len(tokens):.1f} KiB per "
                "subscriber"
            )
            print(machine_speed())
            print(f"load average before the run: {os.getloadavg()}")
            cpu_before = [servers_cpu(), *(cpu_s(c.pid) for c in clients)]
            dispatcher_before = cpu_s(dispatcher.pid) if dispatcher else 0.0
            generator_before = time.process_time()
            started = time.perf_counter()
            events = asyncio.run(generate(env, args.rate, args.duration, dispatcher is not None))
            announce_final(outs, events)
            elapsed = time.perf_counter() - started
            generator_cpu = time.process_time() - generator_before
            cpu_after = [servers_cpu(), *(cpu_s(c.pid) for c in clients)]
            if dispatcher is not None:
                used = (cpu_s(dispatcher.pid) - dispatcher_before) / elapsed
                print(f"dispatcher process (every handler, earnings too): {used:.0%} of a core")
            server_cpu, *client_cpu = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
            clients_pct = " ".join(f"{c / elapsed:.0%}" for c in client_cpu)
            print(f"CPU during the run ({elapsed:.0f} s): servers {server_cpu / elapsed:.0%} of "
                  f"a core (all together), client processes {clients_pct}, generator "
                  f"{generator_cpu / elapsed:.0%}")  # fmt: skip
            print(f"load average after the run: {os.getloadavg()}")
            peak_rss = servers_rss()
            print(f"{len(events)} approvals at {len(events) / args.duration:.1f}/s; server RSS "
                  f"during the run {peak_rss / 1024:.1f} MiB")  # fmt: skip
            for client in clients:
                client.wait(timeout=600)
            _report(outs, events, len(tokens))
        finally:
            for client in clients:
                if client.poll() is None:
                    client.terminate()
            if dispatcher is not None:
                dispatcher.terminate()
                dispatcher.wait()
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait()


def _report(outs: list[str], events: list[tuple[int, int, int | None]], subscribers: int) -> None:
    latencies: list[float] = []
    fanned: list[float] = []  # from the notice to the receipt: the fan-out's part
    worst: dict[int, float] = {}  # second of the run -> its slowest delivery
    missed = pushes = backwards = short = 0
    final = max(v for _, v, _ in events)
    for out in outs:
        for log in json.loads(Path(out).read_text()):
            pushes += len(log)
            versions = [v for v, _ in log]
            backwards += sum(b < a for a, b in itertools.pairwise(versions))
            if not versions or versions[-1] != final:
                short += 1  # its last push is not the final state
            # The first push whose version is >= v is where the running maximum of
            # versions first reaches v.
            reached = list(itertools.accumulate(versions, max))
            for committed, version, noticed in events:
                i = bisect.bisect_left(reached, version)
                if i == len(log):
                    missed += 1
                else:
                    latencies.append((log[i][1] - committed) / 1e9)
                    if noticed is not None:
                        fanned.append((log[i][1] - noticed) / 1e9)
                    second = (committed - events[0][0]) // 10**9
                    worst[second] = max(worst.get(second, 0.0), latencies[-1])
    print(f"pushes received: {pushes:,} ({pushes / subscribers:.1f} per subscriber)")
    print("slowest delivery per second of the run (ms): " + " ".join(
        f"{worst[k] * 1000:.0f}" for k in sorted(worst)))  # fmt: skip
    if not latencies:
        print(f"no push carried an approval; never received: {missed}")
        return
    ms = {p: percentile(latencies, p) * 1000 for p in (50, 95, 99)}
    print(
        f"commit-to-receive latency over {len(latencies):,} (event, subscriber) pairs: "
        f"p50 {ms[50]:.0f} ms, p95 {ms[95]:.0f} ms, p99 {ms[99]:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms; never received: {missed}"
    )
    if fanned:
        ms = {p: percentile(fanned, p) * 1000 for p in (50, 95, 99)}
        print(f"notice-to-receive (the fan-out: wait, read, render, pass, client): p50 "
              f"{ms[50]:.0f} ms, p95 {ms[95]:.0f} ms, p99 {ms[99]:.0f} ms")  # fmt: skip
    print(f"results: {backwards} pushes with a version below the one before; "
          f"{subscribers - short:,} of {subscribers:,} subscribers ended on the final version "
          f"{final}")  # fmt: skip


def _snapshot(servers: list[subprocess.Popen[bytes]], trace: Path, n: int) -> None:
    """Asks each traced server (benchmarks/traced_server.py) for its n-th tracemalloc
    snapshot, and waits for them."""
    for server in servers:
        os.kill(server.pid, signal.SIGUSR1)
    for server in servers:
        while not Path(f"{trace}-{server.pid}-{n}.snap").exists():
            time.sleep(0.5)


def _report_growth(trace: Path, servers: int, subscribers: int) -> None:
    import tracemalloc  # noqa: PLC0415

    snaps = sorted(trace.parent.glob(trace.name + "-*.snap"))
    by_pid: dict[str, list[Path]] = {}
    for snap in snaps:
        by_pid.setdefault(snap.name.split("-")[1], []).append(snap)
    total: dict[str, int] = {}
    for pid, (before, after, *_) in by_pid.items():
        diff = tracemalloc.Snapshot.load(str(after)).compare_to(
            tracemalloc.Snapshot.load(str(before)), "lineno"
        )
        print(f"tracemalloc, server {pid}: {sum(d.size_diff for d in diff) / 1024:,.0f} KiB grew")
        for d in diff:
            site = str(d.traceback[0])
            total[site] = total.get(site, 0) + d.size_diff
    files: dict[str, int] = {}
    for site, size in total.items():
        name = site.rsplit(":", 1)[0]
        name = name.split("site-packages/")[-1].split("/lib/python3")[-1].removeprefix(os.getcwd())
        files[name] = files.get(name, 0) + size
    print(f"by file, bytes per subscriber ({servers} server(s)):")
    for name, size in sorted(files.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {size / subscribers:8.0f}  {name}")
    top = sorted(total.items(), key=lambda kv: -kv[1])[:30]
    print(f"allocation sites that grew most, bytes per subscriber ({servers} server(s)):")
    for site, size in top:
        print(f"  {size / subscribers:8.0f}  {site}")
    counts: dict[str, int] = {}
    for before, after, *_ in by_pid.values():
        old = json.loads(Path(str(before) + ".types").read_text())
        for name, n in json.loads(Path(str(after) + ".types").read_text()).items():
            counts[name] = counts.get(name, 0) + n - old.get(name, 0)
    print(
        "objects tracked by the collector, per subscriber: "
        f"{sum(counts.values()) / subscribers:.1f}"
    )
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {n / subscribers:6.2f}  {name}")


if __name__ == "__main__":
    main()
