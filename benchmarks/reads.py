"""Read benchmarks: `myStanding` latency at 1,000 and 1,000,000 participants (``--big``;
one board when it is 1,000 or fewer), and `leaderboard(first: 10)` requests/s over HTTP from
one uvicorn worker (wrk) beside a plain Starlette endpoint returning the same rows from Redis.

    .venv/bin/python -m benchmarks.reads [--big 1000000] [--duration 15] [--database-url URL]

Needs wrk on PATH (apt-get install wrk) for the requests/s part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from api import migrations
from api.auth import issue_token
from api.settings import JWTSettings
from benchmarks.common import bench_redis, summary_ms
from infra.clock import SystemClock
from infra.db import Database
from infra.redis import Keys, connect
from leaderboards import service
from leaderboards.boards import Boards
from leaderboards.scoring import BoardKeys
from partners import service as partners
from partners.roles import Principal, Role
from tests.ports import free_port

MY_STANDING = "query($id: ID!) { myStanding(contestId: $id) { rank score gapToNext percentile } }"
LEADERBOARD = (
    "query($id: ID!) { leaderboard(contestId: $id, first: 10) "
    "{ edges { node { rank score participant { name } } } } }"
)


async def populate(
    redis_url: str, namespace: str, contest_id: uuid.UUID, me: uuid.UUID, n: int
) -> None:
    redis = connect(redis_url)
    k = BoardKeys(Keys(namespace), contest_id)
    z = k.board("all")[0]
    await redis.delete(z)
    chunk = 20_000
    for start in range(0, n - 1, chunk):
        size = min(chunk, n - 1 - start)
        await redis.zadd(z, {str(uuid.uuid4()): random.randint(0, 10_000_000) for _ in range(size)})
    await redis.zadd(z, {str(me): 5_000_000})
    await redis.set(k.built, "1")
    await redis.sadd(k.periods, "all")
    print(f"board populated: {await redis.zcard(z):,} participants")
    await redis.aclose()


async def standing_latency(
    redis_url: str, namespace: str, contest: object, me: uuid.UUID
) -> list[float]:
    redis = connect(redis_url)
    boards = Boards(redis, Keys(namespace))
    samples = []
    for _ in range(2_000):
        t = time.perf_counter()
        await boards.standing(contest, "all", me)  # type: ignore[arg-type]
        samples.append(time.perf_counter() - t)
    await redis.aclose()
    return samples


async def http_latency(
    address: str, token: str, query: str, variables: dict[str, str], n: int
) -> list[float]:
    samples = []
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        body = {"query": query, "variables": variables}
        headers = {"authorization": f"Bearer {token}"}
        first = await client.post("/graphql", json=body, headers=headers)
        assert "errors" not in first.json(), first.text
        for _ in range(n):
            t = time.perf_counter()
            response = await client.post("/graphql", json=body, headers=headers)
            samples.append(time.perf_counter() - t)
            assert response.status_code == 200
    return samples


def wrk(
    url: str,
    duration: int,
    body: str | tuple[str, str] | None = None,
    token: str | None = None,
) -> str:
    """wrk's report. ``body`` as (prefix, suffix) sends prefix + a counter + suffix, so that
    no two requests are alike (nothing can be answered from the response memo)."""
    script = None
    args = ["wrk", "-t1", "-c32", f"-d{duration}s", "--latency"]
    if body is not None:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        )
        if isinstance(body, str):
            script.write(f"wrk.body = {json.dumps(body)}\n")
        else:
            prefix, suffix = (json.dumps(part) for part in body)
            script.write(
                "local n = 0\n"
                "request = function()\n"
                "  n = n + 1\n"
                f"  return wrk.format(nil, nil, nil, {prefix} .. n .. {suffix})\n"
                "end\n"
            )
        script.close()
        args += ["-s", script.name]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if script is not None:
        os.unlink(script.name)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_with_cpu(
    pid: int,
    url: str,
    duration: int,
    body: str | tuple[str, str] | None = None,
    token: str | None = None,
) -> str:
    """wrk's report plus the server's CPU time per request: on a shared machine the
    requests/s figure moves with the load, the CPU cost much less."""
    before = cpu_seconds(pid)
    out = wrk(url, duration, body, token)
    used = cpu_seconds(pid) - before
    requests = int(out.split(" requests in ")[0].split()[-1])
    return f"{out}server CPU per request: {used / requests * 1000:.3f} ms\n"


def serve(module: str, port: int, env: dict[str, str], factory: bool) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-m", "uvicorn", module, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--ws-per-message-deflate", "false",
    ]  # fmt: skip
    if factory:
        args.append("--factory")
    return subprocess.Popen(args, env={**os.environ, **env})


def wait_ready(address: str, path: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"http://{address}{path}").status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{address} did not start")


async def main_async(big: int, duration: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="cbreads-") as tmp, bench_redis() as redis_url:
        db_url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await migrations.upgrade(db_url)
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        clock = SystemClock()
        db = Database(db_url)
        async with db.transaction() as session:
            run = uuid.uuid4().hex[:6]  # the database may be reused between runs
            vendor = await partners.create_vendor(session, clock, name="Bench", slug=f"b-{run}")
            partner = await partners.create_partner(
                session, clock, vendor_id=vendor.id, name="Bench Partner", region="EMEA"
            )
            user = await partners.create_user(
                session, clock, vendor_id=vendor.id, partner_id=partner.id,
                email=f"rep-{run}@bench.example", role=Role.PARTNER_REP, display_name="Rep",
            )  # fmt: skip
            admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
            now = datetime.now(UTC)
            contest = await service.create_contest(
                session, admin, clock,
                settings=service.ContestSettings(
                    name="Bench", starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=9)
                ),
            )  # fmt: skip
            contest = await service.publish_contest(session, admin, clock, contest_id=contest.id)
        await db.dispose()
        token = issue_token(JWTSettings(), user, ttl=timedelta(hours=2))
        from schema.relay import to_global_id  # noqa: PLC0415

        contest_gid = str(to_global_id("Contest", contest.id))
        env = {
            "CHANNELBOARD_ENV": "test", "CHANNELBOARD_VAR_DIR": tmp,
            "CHANNELBOARD_DATABASE_URL": db_url, "CHANNELBOARD_REDIS_URL": redis_url,
            "CHANNELBOARD_REDIS_NAMESPACE": namespace, "CHANNELBOARD_LOG_LEVEL": "warning",
            "BENCH_REDIS_URL": redis_url, "BENCH_NAMESPACE": namespace,
            "BENCH_CONTEST": str(contest.id),
        }  # fmt: skip
        port = free_port()
        plain_port = free_port(taken=[port])
        api = serve("api.app:create_app", port, env, factory=True)
        plain = serve("benchmarks.plain_app:app", plain_port, env, factory=False)
        try:
            wait_ready(f"127.0.0.1:{port}", "/healthz")
            wait_ready(f"127.0.0.1:{plain_port}", "/top")
            for n in sorted({min(1_000, big), big}):  # one board when --big is 1,000 or less
                await populate(redis_url, namespace, contest.id, partner.id, n)
                redis_samples = await standing_latency(redis_url, namespace, contest, partner.id)
                http_samples = await http_latency(
                    f"127.0.0.1:{port}", token, MY_STANDING, {"id": contest_gid}, 500
                )
                print(f"myStanding at {n:>9,} participants: Redis read {summary_ms(redis_samples)}")
                label = f"myStanding at {n:>9,} participants"
                print(f"{label}: GraphQL over HTTP {summary_ms(http_samples)}")
            if shutil.which("wrk") is None:
                print("wrk not found: skipping requests/s")
                return
            body = json.dumps({"query": LEADERBOARD, "variables": {"id": contest_gid}})
            url = f"http://127.0.0.1:{port}/graphql"
            print(f"--- leaderboard(first: 10) over HTTP, one uvicorn worker, {big:,} participants")
            print("    the same request again and again (an unchanged board: the response memo)")
            print(wrk_with_cpu(api.pid, url, duration, body, token))
            print("    every request different (an unused variable counts up): executed each time")
            unique = (body[: -len("}}")] + ', "nonce": ', "}}")
            print(wrk_with_cpu(api.pid, url, duration, unique, token))
            print("--- plain Starlette endpoint, same rows from Redis (no GraphQL, auth or SQL)")
            print(wrk_with_cpu(plain.pid, f"http://127.0.0.1:{plain_port}/top", duration))
        finally:
            for process in (api, plain):
                process.terminate()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument(
        "--database-url", help="e.g. postgresql+asyncpg://postgres@127.0.0.1/bench (default: "
        "a temporary SQLite file); migrated by the benchmark",
    )  # fmt: skip
    args = parser.parse_args()
    asyncio.run(main_async(args.big, args.duration, args.database_url))


if __name__ == "__main__":
    main()
