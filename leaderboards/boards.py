"""Redis access for contest boards: the registered scripts and the O(log N) reads."""

from __future__ import annotations

import uuid

from infra.redis import AnyRedis, Keys
from leaderboards import ranking
from leaderboards.models import Contest
from leaderboards.scoring import AnyPipeline, BoardKeys, BoardMode, Scripts


class Boards:
    """One per process (per Redis client)."""

    def __init__(self, redis: AnyRedis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.scripts = Scripts(redis)

    def keys_of(self, contest_id: uuid.UUID | str) -> BoardKeys:
        return BoardKeys(self.keys, contest_id)

    async def is_built(self, contest_id: uuid.UUID) -> bool:
        return bool(await self.redis.exists(self.keys_of(contest_id).built))

    async def rebuilds(self, contest_id: uuid.UUID) -> int:
        """How many rebuilds swapped a board in (the value of ``built``; 0: not built)."""
        value = await self.redis.get(self.keys_of(contest_id).built)
        return int(value or 0)

    async def version(self, contest_id: uuid.UUID) -> int:
        value = await self.redis.get(self.keys_of(contest_id).version)
        return int(value or 0)

    async def page(
        self, contest: Contest, period_key: str, start: int, count: int, *, tmp: str = ""
    ) -> ranking.Page:
        """Rows ``start`` .. ``start + count`` of the period's board (``tmp``: of its copy
        by ``snapshot``, ranked by the same script)."""
        k = self.keys_of(contest.id)
        z, raw, dz, _dc, _seen = k.board(period_key, tmp=tmp)
        mode = BoardMode.of(contest)
        reply = await self.scripts.page(
            keys=[z, raw, dz, k.built, k.version],
            args=[start, count, mode.scale, int(mode.rich), int(mode.dense)],
        )
        return ranking.page_from_reply(reply, contest.ranking_style, mode.scale, start)

    async def snapshot(self, contest_id: uuid.UUID, period_key: str, tmp: str, ttl_ms: int) -> None:
        """Copy the period's board, as it is at one instant, to keys named by ``tmp``
        (``BoardKeys.board``), expiring after ``ttl_ms`` (``drop_snapshot`` deletes them)."""
        z, raw, dz, _dc, _seen = self.keys_of(contest_id).board(period_key)
        copy_z, copy_raw, copy_dz, _, _ = self.keys_of(contest_id).board(period_key, tmp=tmp)
        await self.scripts.snapshot(keys=[z, raw, dz, copy_z, copy_raw, copy_dz], args=[ttl_ms])

    async def drop_snapshot(self, contest_id: uuid.UUID, period_key: str, tmp: str) -> None:
        await self.redis.delete(*self.keys_of(contest_id).board(period_key, tmp=tmp)[:3])

    async def standing(
        self, contest: Contest, period_key: str, participant: uuid.UUID
    ) -> tuple[bool, ranking.Standing]:
        k = self.keys_of(contest.id)
        z, raw, dz, _dc, _seen = k.board(period_key)
        mode = BoardMode.of(contest)
        reply = await self.scripts.standing(
            keys=[z, raw, dz, k.built, k.version],
            args=[str(participant), mode.scale, int(mode.rich), int(mode.dense)],
        )
        built = bool(int(reply[0]))
        return built, ranking.standing_from_reply(
            reply, participant, contest.ranking_style, mode.scale
        )

    async def standings(
        self, contest: Contest, period_key: str, participants: list[uuid.UUID]
    ) -> list[ranking.Standing]:
        """Many participants' standings in one pipelined round trip (live pushes)."""
        k = self.keys_of(contest.id)
        z, raw, dz, _dc, _seen = k.board(period_key)
        mode = BoardMode.of(contest)

        async def queue(pipe: AnyPipeline) -> None:
            for participant in participants:
                await self.scripts.standing(
                    keys=[z, raw, dz, k.built, k.version],
                    args=[str(participant), mode.scale, int(mode.rich), int(mode.dense)],
                    client=pipe,  # type: ignore[arg-type]
                )

        replies = await self.scripts.pipelined(queue)
        return [
            ranking.standing_from_reply(r, p, contest.ranking_style, mode.scale)
            for r, p in zip(replies, participants, strict=True)
        ]
