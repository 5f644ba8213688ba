"""Ranks from a sorted set, in O(log N) per question, for three ranking styles.

- COMPETITION (1-2-2-4): rank = 1 + how many have a strictly greater value (ZCOUNT).
- DENSE (1-2-2-3): rank = 1 + how many distinct greater values exist; the board keeps a
  second sorted set of distinct values (maintained by the credit script) to count them.
- FIRST_TO_REACH: no shared ranks. The sorted set's score is the value itself, and the
  member is the *reach key* (``member_key``): the inverted tick (``MAX_TICK - tick``, seven
  digits), ':', the participant id; ``tick`` is whole minutes since the period started.
  Redis orders equal scores by member bytes, so among equal values ZREVRANGE puts the
  earlier reach first; equal value *and* minute fall back to the participant id,
  descending - deterministic, but arbitrary. The reach moment of a total is the latest of
  the events that make it up (order independent, so a rebuild gives the same order). The
  raw hash keeps each participant's tick (``t:<participant>``) to find its member.

Precision: every style stores the value itself in the double, so ranks and tie-breaks are
exact over the whole range a score has (``infra.limits.MAX_SCORE``, 2**53 - 1; a total past
it is capped there, see ``leaderboards.scoring``). First-to-reach used to pack value and
tick into one double (``value * 2**20 + inverted tick``), exact only for values up to
2**33 - 1 (for revenue in cents, about 85.9 million): beyond it the minute was rounded
away. The tie key in the member keeps the minute at any value, at the cost of re-keying a
participant's member when its reach moment moves (one ZADD and one ZREM, in the credit
script). Values are integers (minor units, units, counts, points, or basis points of
target: floor(total * 10000 / target), computed exactly by the credit script, see
``leaderboards.scoring``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from infra import limits
from leaderboards.models import RankingStyle

TIE_BITS = 20
TIE_SCALE = 1 << TIE_BITS  # passed to the scripts as ``scale``: > 1 means first-to-reach
MAX_TICK = TIE_SCALE - 1  # about 728 days of minutes: seven digits in a reach key
KEY_DIGITS = 7


def member_key(participant: uuid.UUID | str, tick: int) -> str:
    """A first-to-reach board's member for ``participant``, reached at ``tick``."""
    return f"{MAX_TICK - tick:0{KEY_DIGITS}d}:{participant}"


def parse_member(member: str, scale: int) -> tuple[uuid.UUID, int]:
    """(participant, tick) of a board's member (tick 0 unless a reach key). Told apart by
    its shape, not by the contest's style (``scale``): from a change of ranking style until
    the rebuild it triggers (ContestChanged, after commit), the board read still holds the
    old style's members, and a read then must not fail (a participant id never has ':' at
    ``KEY_DIGITS``)."""
    if len(member) > KEY_DIGITS and member[KEY_DIGITS] == ":":
        return uuid.UUID(member[KEY_DIGITS + 1 :]), MAX_TICK - int(member[:KEY_DIGITS])
    return uuid.UUID(member), 0


# KEYS: z raw dz built ver; ARGV: start count scale rich dense
PAGE_LUA = """
local built = redis.call('EXISTS', KEYS[4])
local ver = redis.call('GET', KEYS[5]) or '0'
local card = redis.call('ZCARD', KEYS[1])
local start = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local lex = tonumber(ARGV[3]) > 1
local from = start
if from > 0 then from = from - 1 end
local rows = {}
if n > 0 then rows = redis.call('ZREVRANGE', KEYS[1], from, start + n - 1, 'WITHSCORES') end
local raws = {}
if ARGV[4] == '1' and #rows > 0 then
  local members = {}
  for i = 1, #rows, 2 do
    local m = rows[i]
    if lex then m = string.sub(m, 9) end
    members[#members + 1] = m
  end
  raws = redis.call('HMGET', KEYS[2], unpack(members))
end
local above = 0
local first = 1
if start > 0 then first = 3 end
if rows[first] then
  local v = math.floor(tonumber(rows[first + 1]))
  if ARGV[5] == '1' then
    above = redis.call('ZCOUNT', KEYS[3], string.format('%.0f', v + 1), '+inf')
  else
    above = redis.call('ZCOUNT', KEYS[1], string.format('%.0f', v + 1), '+inf')
  end
end
return {built, ver, card, above, rows, raws}
"""

# KEYS: z raw dz built ver; ARGV: member scale rich dense
STANDING_LUA = """
local built = redis.call('EXISTS', KEYS[4])
local ver = redis.call('GET', KEYS[5]) or '0'
local card = redis.call('ZCARD', KEYS[1])
local member = ARGV[1]
local scale = tonumber(ARGV[2])
local lex = scale > 1
-- The member as the board holds it: the reach key when it keeps the participant's tick
-- (first-to-reach), else the id. Decided by the board, not the style: from a change of
-- ranking style until its rebuild, the board still has the old style's members.
local key = member
local t = redis.call('HGET', KEYS[2], 't:' .. member)
if t then key = string.format('%07d:', {max_tick} - tonumber(t)) .. member end
local score = redis.call('ZSCORE', KEYS[1], key)
local v = 0
local pos = -1
local raw = false
if score then
  v = math.floor(tonumber(score))
  pos = redis.call('ZREVRANK', KEYS[1], key)
  if ARGV[3] == '1' then raw = redis.call('HGET', KEYS[2], member) end
end
local lo = string.format('%.0f', v)
local hi = string.format('%.0f', v + 1)
local greater = redis.call('ZCOUNT', KEYS[1], hi, '+inf')
local same = redis.call('ZCOUNT', KEYS[1], lo, '(' .. hi)
local dense_greater = 0
if ARGV[4] == '1' then
  dense_greater = redis.call('ZCOUNT', KEYS[3], hi, '+inf')
end
local above = {}
if lex and pos > 0 then
  above = redis.call('ZREVRANGE', KEYS[1], pos - 1, pos - 1, 'WITHSCORES')
elseif lex and pos < 0 then
  above = redis.call('ZRANGEBYSCORE', KEYS[1], lo, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
else
  above = redis.call('ZRANGEBYSCORE', KEYS[1], hi, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
local above_raw = false
local above_greater = 0
if above[1] then
  local who = above[1]
  if lex then who = string.sub(who, 9) end
  if ARGV[3] == '1' then above_raw = redis.call('HGET', KEYS[2], who) end
  local av = math.floor(tonumber(above[2]))
  above_greater = redis.call('ZCOUNT', KEYS[1], string.format('%.0f', av + 1), '+inf')
end
return {built, ver, card, score or false, pos, raw, greater, same, dense_greater, above,
        above_raw, above_greater, key}
""".replace("{max_tick}", str(MAX_TICK))


@dataclass(frozen=True)
class Row:
    participant_id: uuid.UUID
    rank: int
    score: int  # the raw score (metric units)
    value: int  # what ranks: the score, or basis points of the participant's target
    tick: int
    gap_to_above: int | None  # value difference to the row above; None for the first


@dataclass(frozen=True)
class Page:
    built: bool
    version: int
    total: int
    rows: list[Row]


@dataclass(frozen=True)
class Standing:
    participant_id: uuid.UUID
    rank: int
    score: int
    value: int
    tick: int | None
    on_board: bool
    tied_with: int  # others with the same value
    total: int
    nemesis: Row | None  # the participant just above (a strictly higher value unless F2R)
    version: int

    @property
    def gap_to_next(self) -> int | None:
        return None if self.nemesis is None else self.nemesis.value - self.value

    @property
    def percentile(self) -> float:
        """Share of the board at or below this standing (the leader is 100)."""
        total = max(self.total, self.rank)
        return round(100.0 * (total - self.rank + 1) / total, 1)


def _int(value: Any) -> int:
    return int(value.decode() if isinstance(value, bytes) else value)


def _shown(raw: Any) -> int:
    """A raw total as a board shows it: within the cap (the raw hash keeps it exact)."""
    return max(-limits.MAX_SCORE, min(_int(raw), limits.MAX_SCORE))


def _text(value: Any) -> str:
    return str(value.decode() if isinstance(value, bytes) else value)


def page_from_reply(reply: list[Any], style: RankingStyle, scale: int, start: int) -> Page:
    built, ver, card, above, flat, raws = reply
    entries: list[tuple[uuid.UUID, int, int, int]] = []
    for i in range(0, len(flat), 2):
        pid, tick = parse_member(_text(flat[i]), scale)
        value = int(float(_text(flat[i + 1])))
        raw_item = raws[i // 2] if raws else None
        score = _shown(raw_item) if raw_item is not None else value
        entries.append((pid, value, score, tick))
    previous = None
    if start > 0 and entries:
        previous, entries = entries[0], entries[1:]
    rows: list[Row] = []
    for i, (pid, value, score, tick) in enumerate(entries):
        if i == 0:
            if style is RankingStyle.FIRST_TO_REACH:
                rank = start + 1
            else:
                rank = int(above) + 1
        else:
            prev = rows[-1]
            if style is RankingStyle.FIRST_TO_REACH:
                rank = start + i + 1
            elif value == prev.value:
                rank = prev.rank
            elif style is RankingStyle.DENSE:
                rank = prev.rank + 1
            else:
                rank = start + i + 1
        above_value = rows[-1].value if rows else (previous[1] if previous else None)
        gap = None if above_value is None else above_value - value
        rows.append(Row(pid, rank, score, value, tick, gap))
    return Page(bool(_int(built)), _int(ver), _int(card), rows)


def standing_from_reply(
    reply: list[Any], participant: uuid.UUID, style: RankingStyle, scale: int
) -> Standing:
    (
        built,
        ver,
        card,
        score,
        pos,
        raw,
        greater,
        same,
        dense_greater,
        above,
        above_raw,
        above_greater,
        reply_key,
    ) = reply
    on_board = bool(score)
    if on_board:
        value = int(float(_text(score)))
        tick = parse_member(_text(reply_key), scale)[1] if scale > 1 else 0
    else:
        value, tick = 0, 0
    raw_score = _shown(raw) if raw else value
    if style is RankingStyle.FIRST_TO_REACH:
        rank = _int(pos) + 1 if on_board else _int(greater) + _int(same) + 1
    elif style is RankingStyle.DENSE:
        rank = _int(dense_greater) + 1
    else:
        rank = _int(greater) + 1
    nemesis = None
    if above:
        above_id, a_tick = parse_member(_text(above[0]), scale)
        a_value = int(float(_text(above[1])))
        a_rank = _int(above_greater) + 1 if style is RankingStyle.COMPETITION else rank - 1
        nemesis = Row(
            participant_id=above_id,
            rank=max(a_rank, 1),
            score=_shown(above_raw) if above_raw else a_value,
            value=a_value,
            tick=a_tick,
            gap_to_above=None,
        )
    tied = _int(same) - (1 if on_board else 0)
    return Standing(
        participant_id=participant,
        rank=rank,
        score=raw_score,
        value=value,
        tick=tick if on_board else None,
        on_board=on_board,
        tied_with=tied,
        total=_int(card),
        nemesis=nemesis,
        version=_int(ver),
    )


def tie_rule(style: RankingStyle, standing: Standing) -> str:
    """Which rule placed this standing, in words."""
    if style is RankingStyle.FIRST_TO_REACH:
        if standing.tied_with == 0:
            return "No tie: ranked by score."
        return (
            f"Tied on score with {standing.tied_with} other(s); first-to-reach ranking puts "
            "whoever reached the score first higher (to the minute; same minute falls back "
            "to a fixed participant order)."
        )
    if standing.tied_with == 0:
        return "No tie: ranked by score."
    if style is RankingStyle.DENSE:
        return (
            f"Tied with {standing.tied_with} other(s), sharing rank {standing.rank}; dense "
            "ranking (1-2-2-3) gives the next score the very next rank."
        )
    return (
        f"Tied with {standing.tied_with} other(s), sharing rank {standing.rank}; competition "
        "ranking (1-2-2-4) leaves a gap after a tie."
    )
