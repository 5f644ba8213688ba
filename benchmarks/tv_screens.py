"""TV screens versus ordinary subscribers: N office screens (display keys) watching one
contest cost no more than N partner subscribers, because they share the contest's feed
(leaderboards.fanout: one board read and one rendering per refresh for every subscriber of
the same visibility, whoever they are).

    .venv/bin/python -m benchmarks.tv_screens [--screens 50] [--rate 20] [--duration 20]

Two runs against a fresh uvicorn each (SQLite, a private redis-server, the server with
CHANNELBOARD_DISPATCH=external so it only serves): first N partner reps (JWTs), then N
display keys, each connection holding the TV page's own `leaderboardChanged` subscription
over graphql-transport-ws, from one client process (minimal asyncio clients:
benchmarks.leaderboard_fanout.BenchClient). A generator process approves sales at the rate
and dispatches them itself. Per run: server memory per connected socket, server CPU during
the approvals, pushes received per socket, and commit-to-receive latency.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import functools
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvloop

from benchmarks.common import bench_redis, percentile
from benchmarks.leaderboard_fanout import (
    BenchClient,
    announce_final,
    cpu_s,
    generate,
    rss_kb,
    until_final,
)
from tests.ports import free_port

# What the TV page subscribes to (api/tv/assets/tv.js).
TV_QUERY = """subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 10) {
  contestId version status period final
  rows { rank score gapToAbove participant { id name } } } }"""


async def client_main(
    address: str, tokens: list[str], contest: str, seconds: float, out: str
) -> None:
    loop = asyncio.get_running_loop()
    host, port = address.rsplit(":", 1)
    logs: list[list[tuple[int, int]]] = [[] for _ in tokens]
    protocols = []
    for index, token in enumerate(tokens):
        _, proto = await loop.create_connection(
            functools.partial(BenchClient, token, contest, logs[index], TV_QUERY), host, int(port)
        )
        protocols.append(proto)
        await proto.subscribed
    Path(out + ".ready").write_text("1")  # noqa: ASYNC240
    await until_final(seconds, out, logs)
    for proto in protocols:
        if proto.transport is not None:
            proto.transport.abort()
    Path(out).write_text(json.dumps(logs))  # noqa: ASYNC240


async def seed(db_url: str, screens: int) -> tuple[str, list[str], list[str]]:
    """A vendor, 10 partners, ``screens`` partner reps (their JWTs) and ``screens``
    display keys (their secrets) on one live, anonymised contest."""
    from api import migrations  # noqa: PLC0415
    from api.auth import issue_token  # noqa: PLC0415
    from api.settings import JWTSettings  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from leaderboards import display_keys, service  # noqa: PLC0415
    from partners import service as partners  # noqa: PLC0415
    from partners.models import User  # noqa: PLC0415
    from partners.roles import Principal, Role  # noqa: PLC0415
    from schema.relay import to_global_id  # noqa: PLC0415

    await migrations.upgrade(db_url)
    db = Database(db_url)
    clock = SystemClock()
    async with db.transaction() as session:
        vendor = await partners.create_vendor(session, clock, name="TV", slug="tv")
        rows = [
            await partners.create_partner(
                session, clock, vendor_id=vendor.id, name=f"Partner {i:02d}", region="EMEA"
            )
            for i in range(10)
        ]
        users = [
            User(
                vendor_id=vendor.id,
                partner_id=rows[i % 10].id,
                email=f"rep{i}@tv.example",
                display_name=f"Rep {i}",
                role=Role.PARTNER_REP,
                created_at=clock.now(),
            )  # fmt: skip
            for i in range(screens)
        ]
        session.add_all(users)
        admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN, operator="bench")
        now = datetime.now(UTC)
        contest = await service.create_contest(
            session, admin, clock,
            settings=service.ContestSettings(
                name="TV", starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1),
                anonymise=True,
            ),
        )  # fmt: skip
        await service.publish_contest(session, admin, clock, contest_id=contest.id)
        keys = [
            (
                await display_keys.create_display_key(
                    session, admin, clock, label=f"Screen {i}", contest_ids=[contest.id]
                )
            ).secret
            for i in range(screens)
        ]
    await db.dispose()
    jwt = JWTSettings()
    tokens = [issue_token(jwt, u, ttl=timedelta(hours=3)) for u in users]
    return str(to_global_id("Contest", contest.id)), tokens, keys


def run(
    label: str, env: dict[str, str], tmp: str, contest: str, credentials: list[str],
    rate: float, duration: float,
) -> dict[str, float]:  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--ws-per-message-deflate", "false",
         "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    client = None
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://{address}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the server did not start (exit code {server.poll()})")
        time.sleep(1)
        base_rss = rss_kb(server.pid)
        token_file = Path(tmp) / f"{label}.json"
        token_file.write_text(json.dumps(credentials))
        out = str(Path(tmp) / f"{label}-out.json")
        client = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.tv_screens", "--client", address,
             str(token_file), contest, str(duration + 6), out],
            env=env,
        )  # fmt: skip
        while not Path(out + ".ready").exists():
            if client.poll() is not None:
                raise RuntimeError("the client process died while connecting")
            time.sleep(0.2)
        time.sleep(2)
        rss = rss_kb(server.pid)
        load_before = os.getloadavg()[0]
        cpu_before = cpu_s(server.pid)
        started = time.perf_counter()
        events = asyncio.run(generate(env, rate, duration, False))
        announce_final([out], events)
        elapsed = time.perf_counter() - started
        server_cpu = (cpu_s(server.pid) - cpu_before) / elapsed
        load_after = os.getloadavg()[0]
        client.wait(timeout=120)
        latencies: list[float] = []
        pushes = missed = 0
        for log in json.loads(Path(out).read_text()):
            pushes += len(log)
            reached = list(itertools.accumulate((v for v, _ in log), max))
            for committed, version, _noticed in events:
                i = bisect.bisect_left(reached, version)
                if i == len(log):
                    missed += 1
                else:
                    latencies.append((log[i][1] - committed) / 1e9)
        n = len(credentials)
        return {
            "sockets": n, "kib_per_socket": (rss - base_rss) / n, "server_cpu": server_cpu,
            "approvals": len(events), "pushes_per_socket": pushes / n,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "missed": missed, "load_before": load_before, "load_after": load_after,
        }  # fmt: skip
    finally:
        if client is not None and client.poll() is None:
            client.terminate()
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--screens", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument(
        "--client", nargs=5, metavar=("ADDR", "TOKENS", "CONTEST", "SECONDS", "OUT")
    )
    args = parser.parse_args()
    if args.client:
        address, token_file, contest, seconds, out = args.client
        tokens = json.loads(Path(token_file).read_text())
        uvloop.run(client_main(address, tokens, contest, float(seconds), out))
        return
    with tempfile.TemporaryDirectory(prefix="cbtv-") as tmp, bench_redis() as redis_url:
        db_url = f"sqlite+aiosqlite:///{Path(tmp) / 'tv.db'}"
        env = {
            **os.environ, "CHANNELBOARD_ENV": "test", "CHANNELBOARD_VAR_DIR": tmp,
            "CHANNELBOARD_DATABASE_URL": db_url, "CHANNELBOARD_REDIS_URL": redis_url,
            "CHANNELBOARD_REDIS_NAMESPACE": f"tv-{uuid.uuid4().hex[:6]}",
            "CHANNELBOARD_LOG_LEVEL": "warning", "CHANNELBOARD_DISPATCH": "external",
        }  # fmt: skip
        contest, tokens, keys = asyncio.run(seed(db_url, args.screens))
        results = {
            "partner subscribers": run("subscribers", env, tmp, contest, tokens, args.rate,
                                       args.duration),
            "TV screens (display keys)": run("screens", env, tmp, contest, keys, args.rate,
                                             args.duration),
        }  # fmt: skip
    print(f"{args.screens} sockets on one contest, {args.rate:g} approvals/s for "
          f"{args.duration:g} s, each run on a fresh server")  # fmt: skip
    print(
        "| run | KiB per socket | server CPU | approvals | pushes per socket | p50 | p99 "
        "| never received | load avg before → after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['kib_per_socket']:.1f} | {r['server_cpu']:.1%} of a core | "
            f"{r['approvals']:.0f} | {r['pushes_per_socket']:.1f} | {r['p50_ms']:.0f} ms | "
            f"{r['p99_ms']:.0f} ms | {r['missed']:.0f} | "
            f"{r['load_before']:.1f} → {r['load_after']:.1f} |"
        )


if __name__ == "__main__":
    main()
