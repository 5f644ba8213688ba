"""A plain Starlette endpoint returning the same top-10 rows from Redis as
`leaderboard(first: 10)`, without GraphQL, authentication or SQL: the baseline for reads.py.

    BENCH_REDIS_URL=... BENCH_NAMESPACE=... BENCH_CONTEST=... uvicorn benchmarks.plain_app:app
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.redis import Keys, connect
from leaderboards import ranking
from leaderboards.models import RankingStyle
from leaderboards.scoring import BoardKeys, Scripts

redis = connect(os.environ["BENCH_REDIS_URL"])
scripts = Scripts(redis)
board = BoardKeys(Keys(os.environ["BENCH_NAMESPACE"]), os.environ["BENCH_CONTEST"])


async def top(_: Request) -> JSONResponse:
    z, raw, dz, _dc, _seen = board.board("all")
    reply = await scripts.page(keys=[z, raw, dz, board.built, board.version], args=[0, 10, 1, 0, 0])
    page = ranking.page_from_reply(reply, RankingStyle.COMPETITION, 1, 0)
    return JSONResponse(
        {
            "rows": [
                {"rank": r.rank, "score": r.score, "participant": str(r.participant_id)}
                for r in page.rows
            ]
        }
    )


app = Starlette(routes=[Route("/top", top)])
