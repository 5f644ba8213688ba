"""Scoring: what a source event is worth in a contest, and crediting it to Redis exactly
once.

A credit is applied by one Lua script that records the event id in the board's "seen" set
and updates the participant's score in the same atomic step, so a replayed or concurrently
dispatched event never counts twice. The SQL ledger (``ContestCredit``, unique per contest
and event) is written first; Redis is derived from it and can be rebuilt (rebuild.py).

Board layout, per contest and period (``{ns}:lb:{{contest}}:v2:p:{period}:...``, ``v2``
being ``LAYOUT``; the contest id in braces is a cluster hash tag, so all of a contest's keys
share one slot and every script and pipeline below stays on one node):

- ``z``     sorted set: participant -> rank value (the score, or basis points of the
  participant's target; first-to-reach: the member is the reach key, ranking.member_key)
- ``raw``   hash: participant -> exact raw score (in "rich" mode: targets, dense,
  first-to-reach; on a plain board only for a total past the cap), and for first-to-reach
  ``t:<participant>`` -> the tick of its reach moment
- ``dz``/``dc`` distinct rank values (sorted set + counts), for dense ranks in O(log N)
- ``seen``  set of credited source event ids

and per contest: ``ver`` (a version bumped on every change, carried by every push),
``built`` (present while Redis holds the contest's standings; missing means rebuild first;
its value counts the rebuilds that swapped a board in), ``enc`` (how the boards are kept,
``BoardMode.encoding``: set by the swap that put them in, and followed by every credit, so
the members of a participant change with the ranking style at that swap, never between),
while a freeze reads a period's board, its copy (``snap:<token>:p:<period>:z``, ``raw``,
``dz``: ``SNAPSHOT_LUA``), and, while a rebuild runs, ``lock`` and ``journal``
(``period|event`` of every credit applied meanwhile, which the rebuild's snapshot of the
ledger may not have seen).

``built`` only tells that Redis has *a* board, not all of it: a replica promoted while it was
behind, or a restart from an older snapshot, keeps ``built`` and lacks the latest writes.
``leaderboards.integrity`` finds such boards (against the SQL ledger and version ceiling).

Exactness (``infra.limits``): the inputs are bounded so one event is worth at most
``MAX_EVENT_SCORE`` (``credit_for`` cuts, and logs, anything past it); a participant's total
that passes ``MAX_SCORE`` (2**53 - 1) saturates there, with the exact total kept beside it
(``TOTALS_LUA``). Basis points of a target are floor(total * 10000 / target), divided in the
script by exact long division on the raw total's digits (``share_of``; in doubles they were
off by one past a total of about 9 * 10**11), and a target is held to ``MAX_TARGET``
(``target_for``). First-to-reach keeps its tie-break in the member (``ranking``), so every
style is exact over the whole range, and the live path equals a rebuild from the ledger.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from deal_registration.events import (
    DEAL_WON,
    SALE_APPROVED,
    SALE_REVERSED,
    DealWon,
    Line,
    SaleApproved,
)
from infra import limits
from infra.redis import AnyRedis, Keys, is_cluster
from leaderboards import ranking
from leaderboards.models import Contest, Metric, ParticipantKind, RankingStyle, listed, unpack
from leaderboards.recurrence import Period, parse_recurrence, period_at
from subscriptions.events import SUBSCRIPTION_EXPANDED, SUBSCRIPTION_STARTED, SubscriptionChanged

SCORED_EVENT_TYPES = (
    SALE_APPROVED,
    SALE_REVERSED,
    DEAL_WON,
    SUBSCRIPTION_STARTED,
    SUBSCRIPTION_EXPANDED,
)
NEW_ARR_TYPES = (SUBSCRIPTION_STARTED, SUBSCRIPTION_EXPANDED)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewArr:
    """A new subscription's ARR or an expansion's increase, as a contest reads it (the
    NEW_ARR metric): ``amount_minor`` is the ARR won, on one line of the subscription's SKU."""

    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    region: str
    currency: str
    amount_minor: int
    lines: list[Line]
    at: datetime


Source = SaleApproved | DealWon | NewArr


def parse_source(event_type: str, payload: dict[str, object]) -> Source:
    """The scored reading of an approval, a won deal or a subscription start/expansion."""
    if event_type == SALE_APPROVED:
        return SaleApproved.parse(payload)
    if event_type == DEAL_WON:
        return DealWon.parse(payload)
    change = SubscriptionChanged.parse(payload)
    arr = max(change.arr_delta_minor, 0)
    return NewArr(
        partner_id=change.partner_id, rep_user_id=change.rep_user_id, region=change.region,
        currency=change.currency, amount_minor=arr,
        lines=[Line(sku=change.sku, units=0, amount_minor=arr)], at=change.effective_at,
    )  # fmt: skip


NOT_BUILT = -1
DUPLICATE = 0


@dataclass(frozen=True)
class BoardMode:
    """How a contest's boards are encoded; derived from its settings."""

    scale: int  # 2**TIE_BITS for first-to-reach, else 1
    rich: bool  # keeps raw scores apart from rank values, and distinct values
    dense: bool

    @classmethod
    def of(cls, contest: Contest) -> BoardMode:
        f2r = contest.ranking_style is RankingStyle.FIRST_TO_REACH
        dense = contest.ranking_style is RankingStyle.DENSE
        return cls(
            scale=ranking.TIE_SCALE if f2r else 1,
            rich=bool(contest.targets) or f2r or dense,
            dense=dense,
        )

    @property
    def encoding(self) -> str:
        """The mode as a board keeps it in Redis (the start of its ``encoding`` key)."""
        return f"{self.scale}:{int(self.rich)}:{int(self.dense)}"


def built_from(contest: Contest) -> str:
    """What a board's ``encoding`` key holds (set by the swap that put it in): how it is
    kept (``BoardMode.encoding``) and the contest's settings version it was built from.
    Scripts read the first; a freeze compares the whole with the contest's: a board built
    before a change of settings (targets, style, weights: the change's rebuild comes after
    its commit, from the outbox) is not the contest's, and it rebuilds it first."""
    return f"{BoardMode.of(contest).encoding}:{contest.version}"


# The board layout's version, in every key of a contest's boards. A new layout is a new set
# of keys: a board of an older one is not read (its contest looks unbuilt, so it is rebuilt
# from the ledger on first use, at a version above any shown) and `leaderboards rebuild`
# deletes its keys (rebuild.drop_untagged_keys). v2: first-to-reach keeps the reach moment in
# the member, no longer in the score's low bits (ranking.py).
LAYOUT = "v2"


class BoardKeys:
    def __init__(self, keys: Keys, contest_id: uuid.UUID | str) -> None:
        self.base = keys("lb", Keys.tag(contest_id), LAYOUT)

    @property
    def version(self) -> str:
        return f"{self.base}:ver"

    @property
    def built(self) -> str:
        return f"{self.base}:built"

    @property
    def lock(self) -> str:
        return f"{self.base}:lock"

    @property
    def periods(self) -> str:
        return f"{self.base}:periods"

    @property
    def journal(self) -> str:
        return f"{self.base}:journal"

    @property
    def encoding(self) -> str:
        return f"{self.base}:enc"

    def board(self, period: str, *, tmp: str = "") -> list[str]:
        """z, raw, dz, dc, seen for one period (``tmp`` names a rebuild's shadow copy)."""
        prefix = f"{self.base}:{tmp}p:{period}"
        return [f"{prefix}:z", f"{prefix}:raw", f"{prefix}:dz", f"{prefix}:dc", f"{prefix}:seen"]


# How a credit changes a board, shared by both credit scripts (Lua functions taking the
# board's keys, all of them declared by the caller).
#
# The cap (infra.limits.MAX_SCORE, the saturating rule): a plain board (not rich) keeps a
# total in z while it is within the cap; past it the exact total moves to the raw hash
# (``exact_add``: an integer of any size) and z holds the cap; from then on the raw field is the
# total, so a reversal that brings it back under the cap is exact again. A rich board keeps
# the exact total in raw anyway. A credit that cuts a total is written to the Redis log
# (rebuild.py logs it in the app's). Lua's numbers are doubles: a total is compared with the
# cap as read, never computed as a difference past it.
#
# First-to-reach (``scale`` > 1): z holds the value itself (exact like the other styles)
# and the member is the reach key, ``ranking.member_key``: the inverted tick in 7 digits,
# ':', the participant. Redis orders equal scores by member, so ZREVRANGE puts the earlier
# reach first, then the higher participant id. The raw hash keeps the participant's tick
# under 't:' .. participant, to find its member. The new member is added before the old one
# goes (rule 2, Scripts).
#
# Basis points of a target (``share_of``): floor(total * 10000 / target), toward minus
# infinity, then capped: the rebuild's rule (rebuild.py, ``raw * 10000 // target``).
# Doubles would be wrong here: total * 10000 passes 2**53 from a total of about 9 * 10**11
# (one large sale), and a quotient just under an integer then rounds up to it (off by one;
# past 2**53 the total itself is not held exactly). So the exact total is read back as the
# raw hash's decimal string and divided by long division, a few decimal digits a step, with a
# remainder below the target: remainder * 10**width + digits stays below 2**53, and so does
# every number the script holds. A target past 2**53 / 11 (targets go to ``MAX_TARGET``,
# 2**53 - 1) takes one digit a step, ten times the remainder made of sums modulo the target
# (each below it), counting the wraps. The quotient stops at the cap.
#
# The exact total in raw is an integer of any size: HINCRBY while the sum cannot pass a
# 64-bit integer (both numbers at most 18 characters: below 10**18 in magnitude), else the
# decimal strings are added digit by digit (``exact_add``). A total past 2**63 - 1 (some
# 77,000 of the largest events one participant may score, infra.limits) made HINCRBY fail
# ("increment or decrement would overflow") with the event already in the seen set (a
# script's writes are not undone): the credit was lost, its retry a duplicate.
TOTALS_LUA = """
local MAX_SCORE = {max_score}
local function magnitude(s)  -- sign, digits without leading zeros
  local negative = string.sub(s, 1, 1) == '-'
  if negative then s = string.sub(s, 2) end
  s = (string.gsub(s, '^0+', ''))
  if s == '' then return false, '0' end
  return negative, s
end
local function digits_add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    out[#out + 1] = d % 10
    carry = math.floor(d / 10)
  end
  return string.reverse(table.concat(out))
end
local function digits_sub(a, b)  -- a >= b
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = string.byte(a, i) - 48 - borrow
    if j > 0 then d = d - (string.byte(b, j) - 48); j = j - 1 end
    if d < 0 then d, borrow = d + 10, 1 else borrow = 0 end
    out[#out + 1] = d
    i = i - 1
  end
  local s = (string.gsub(string.reverse(table.concat(out)), '^0+', ''))
  if s == '' then return '0' end
  return s
end
local function exact_add(raw, member, delta)
  local current = redis.call('HGET', raw, member) or '0'
  if #current <= 18 and #delta <= 18 then
    return redis.call('HINCRBY', raw, member, delta)
  end
  local xn, x = magnitude(current)
  local yn, y = magnitude(delta)
  local negative, sum = xn, nil
  if xn == yn then
    sum = digits_add(x, y)
  elseif #x > #y or (#x == #y and x >= y) then
    sum = digits_sub(x, y)
  else
    negative, sum = yn, digits_sub(y, x)
  end
  if negative and sum ~= '0' then sum = '-' .. sum end
  redis.call('HSET', raw, member, sum)
  return tonumber(sum)
end
-- How the board is kept (``BoardMode.encoding``, set by the rebuild's swap with the boards
-- it built), rather than how the caller's copy of the contest says (the caller's when the
-- board predates the key). From a change of ranking style until its rebuild swaps the new
-- board in, a credit keeps the old board as it is; one whose caller read the contest before
-- the change keeps the new board as it is: a participant is one member of a board.
local function board_encoding(key, scale, rich, dense)
  local kept = redis.call('GET', key)  -- then ':' and the contest's settings version
  if kept then scale, rich, dense = string.match(kept, '^(%d+):(%d):(%d):') end
  return tonumber(scale), rich == '1', dense == '1'
end
local function cap(v, member)
  if v > MAX_SCORE or v < -MAX_SCORE then
    redis.log(redis.LOG_WARNING, 'channelboard: total of ' .. member .. ' capped at 2^53-1')
    if v > 0 then return MAX_SCORE end
    return -MAX_SCORE
  end
  return v
end
local function plain_add(z, raw, member, delta)
  local total
  if redis.call('HEXISTS', raw, member) == 1 then
    total = exact_add(raw, member, delta)
  else
    local old = redis.call('ZSCORE', z, member)
    total = (old and tonumber(old) or 0) + tonumber(delta)
    if total > MAX_SCORE or total < -MAX_SCORE then
      redis.call('HSET', raw, member, string.format('%.0f', old and tonumber(old) or 0))
      total = exact_add(raw, member, delta)
    end
  end
  redis.call('ZADD', z, string.format('%.0f', cap(total, member)), member)
end
local EXACT = 9007199254740992  -- 2^53: every integer below it is a double
local function share_of(total, target, member)
  local negative = string.sub(total, 1, 1) == '-'
  local digits = total
  if negative then digits = string.sub(total, 2) end
  digits = digits .. '0000'
  local width, scale = 0, 1  -- digits per step: remainder * scale + chunk < 2^53
  while width < 15 and target * (scale * 10 + 1) < EXACT do
    width, scale = width + 1, scale * 10
  end
  local q, r = 0, 0
  if width > 0 then
    local i = 1
    local step = (#digits - 1) % width + 1
    while i <= #digits do
      local x = r * 10 ^ step + tonumber(string.sub(digits, i, i + step - 1))
      local carry = math.floor(x / target)
      r = x - carry * target
      if r < 0 then carry, r = carry - 1, r + target
      elseif r >= target then carry, r = carry + 1, r - target end
      q = q * 10 ^ step + carry
      if q > MAX_SCORE then break end
      i = i + step
      step = width
    end
  else  -- a target past 2^53 / 11: 10 * remainder as 2 * (2 * 2r + r), each sum modulo it
    local function add(a, b)  -- (a + b) mod target, and whether it wrapped; a, b < target
      local room = target - a
      if b >= room then return b - room, 1 end
      return a + b, 0
    end
    for i = 1, #digits do
      local carry, w = 0, 0
      if r > 0 then
        local x = r
        x, w = add(x, x); carry = w  -- 2r
        x, w = add(x, x); carry = 2 * carry + w  -- 4r
        x, w = add(x, r); carry = carry + w  -- 5r
        x, w = add(x, x); carry = 2 * carry + w  -- 10r
        r = x
      end
      r, w = add(r, string.byte(digits, i) - 48)  -- a digit: below 10, below the target
      q = q * 10 + carry + w
      if q > MAX_SCORE then break end
    end
  end
  if negative then
    q = -q
    if r > 0 then q = q - 1 end
  end
  return cap(q, member)
end
local function rich_add(z, raw, dz, dc, member, delta, tick, scale, dense, target)
  local function value_of(r)
    if target > 0 then return share_of(r, target, member) end
    return cap(tonumber(r), member)
  end
  local before = redis.call('HGET', raw, member) or '0'
  exact_add(raw, member, delta)
  local value = value_of(redis.call('HGET', raw, member))
  local old_value = nil
  local key, old_key = member, nil
  if scale > 1 then
    local old_tick = redis.call('HGET', raw, 't:' .. member)
    if old_tick then
      old_tick = tonumber(old_tick)
      old_key = string.format('%07d:', scale - 1 - old_tick) .. member
      old_value = value_of(before)
      if old_tick > tick then tick = old_tick end
    end
    redis.call('HSET', raw, 't:' .. member, tick)
    key = string.format('%07d:', scale - 1 - tick) .. member
  elseif redis.call('ZSCORE', z, member) then
    old_value = value_of(before)
  end
  if dense then  -- the new value counted before the old one goes (rule 2, Scripts)
    local f = string.format('%.0f', value)
    if redis.call('HINCRBY', dc, f, 1) == 1 then redis.call('ZADD', dz, f, f) end
    if old_value then
      f = string.format('%.0f', old_value)
      if redis.call('HINCRBY', dc, f, -1) <= 0 then
        redis.call('HDEL', dc, f)
        redis.call('ZREM', dz, f)
      end
    end
  end
  redis.call('ZADD', z, string.format('%.0f', value), key)
  if old_key and old_key ~= key then redis.call('ZREM', z, old_key) end
end
""".replace("{max_score}", str(limits.MAX_SCORE))

# KEYS: z raw dz dc seen built ver periods journal encoding
# ARGV: event_id member delta tick scale rich dense target period
CREDIT_LUA = (
    TOTALS_LUA
    + """
if redis.call('EXISTS', KEYS[6]) == 0 then return -1 end
if redis.call('SADD', KEYS[5], ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[8], ARGV[9])
if redis.call('EXISTS', KEYS[9]) == 1 then
  redis.call('SADD', KEYS[9], ARGV[9] .. '|' .. ARGV[1])
end
local scale, rich, dense = board_encoding(KEYS[10], ARGV[5], ARGV[6], ARGV[7])
if not rich then
  plain_add(KEYS[1], KEYS[2], ARGV[2], ARGV[3])
else
  rich_add(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], tonumber(ARGV[4]),
           scale, dense, tonumber(ARGV[8]))
end
return redis.call('INCR', KEYS[7])
"""
)


# Many credits to one board in one atomic call (same semantics as CREDIT_LUA per item).
# KEYS: z raw dz dc seen built ver periods journal encoding
# ARGV: scale rich dense period, then (event_id member delta tick target) per credit
CREDIT_MANY_LUA = (
    TOTALS_LUA
    + """
if redis.call('EXISTS', KEYS[6]) == 0 then return -1 end
local scale, rich, dense = board_encoding(KEYS[10], ARGV[1], ARGV[2], ARGV[3])
local journal = redis.call('EXISTS', KEYS[9]) == 1
redis.call('SADD', KEYS[8], ARGV[4])
local credited = 0
for i = 5, #ARGV, 5 do
  if redis.call('SADD', KEYS[5], ARGV[i]) == 1 then
    credited = credited + 1
    if journal then redis.call('SADD', KEYS[9], ARGV[4] .. '|' .. ARGV[i]) end
    if not rich then
      plain_add(KEYS[1], KEYS[2], ARGV[i + 1], ARGV[i + 2])
    else
      rich_add(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[i + 1], ARGV[i + 2],
               tonumber(ARGV[i + 3]), scale, dense, tonumber(ARGV[i + 4]))
    end
  end
end
if credited == 0 then return 0 end
return redis.call('INCRBY', KEYS[7], credited)
"""
)


AnyPipeline = Pipeline | ClusterPipeline


class Scripts:
    """The Lua scripts, registered once per Redis client (EVALSHA after the first call).

    On a Redis Cluster whose slot is being migrated (an operator resharding), Redis checks
    a script's declared keys before it runs (it runs where all of them are; else TRYAGAIN,
    and redis-py's ``ClusterError``: an outage the caller retries), then each command the
    script runs: one on a key the node does not hold (moved already, or not there) fails,
    with the script half done, and Lua does not undo what it wrote.
    Two rules keep every script whole, refused before it starts or run to its end:

    1. Every key a script touches is in its KEYS, named in Python: Redis's own rule for
       scripts (redis-py routes by them), which Redis does not enforce.
    2. A script never touches a key after emptying it (the last member of a set, hash or
       sorted set removed, the key deleted or renamed away): it holds the key no more.

    ``tests/leaderboards/test_script_keys.py`` checks rule 1 on every script,
    ``tests/leaderboards/test_slot_migration.py`` both through a real reshard."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self.credit: AsyncScript = redis.register_script(CREDIT_LUA)
        self.credit_many: AsyncScript = redis.register_script(CREDIT_MANY_LUA)
        self.page: AsyncScript = redis.register_script(ranking.PAGE_LUA)
        self.standing: AsyncScript = redis.register_script(ranking.STANDING_LUA)
        self.swap: AsyncScript = redis.register_script(SWAP_LUA)
        self.journal: AsyncScript = redis.register_script(JOURNAL_LUA)
        self.renew: AsyncScript = redis.register_script(RENEW_LUA)
        self.release: AsyncScript = redis.register_script(RELEASE_LUA)
        self.counts: AsyncScript = redis.register_script(COUNTS_LUA)
        self.snapshot: AsyncScript = redis.register_script(SNAPSHOT_LUA)

    async def pipelined(self, queue: Callable[[AnyPipeline], Awaitable[None]]) -> list[Any]:
        """Run the script calls ``queue`` puts on a pipeline, in one round trip per node.
        A single server's pipeline loads missing scripts itself; a cluster's cannot (a new
        node, a promoted replica or a restarted one has an empty script cache), so there
        they are loaded on every master and the pipeline runs again: every script here is
        a read or an idempotent credit, so running one twice changes nothing."""
        pipe = self.redis.pipeline(transaction=False)
        await queue(pipe)
        if not is_cluster(self.redis):
            return list(await pipe.execute())
        try:
            return list(await pipe.execute())
        except NoScriptError:
            for script in (self.credit, self.credit_many, self.page, self.standing, self.swap):
                await self.redis.script_load(script.script)
            pipe = self.redis.pipeline(transaction=False)
            await queue(pipe)
            return list(await pipe.execute())


# Replace a contest's boards with a rebuild's shadow copies in one atomic step, if the
# rebuild still holds the contest's lock (one that outlived its lock must not swap in a copy
# read before another rebuild's). The version goes on above both the old count and the floor
# kept in SQL (leaderboards/versions.py): a rebuild after Redis lost writes (the count went
# back) never hands out a version a client has seen. Returns the version, then the events
# of the journal (credits applied to the old board while the copy was built) that the copy
# does not count: the rebuild re-applies them. {-1} when the lock is not the rebuild's.
# Which periods the old board has is data (``periods``), so their keys are declared by the
# caller as it knows them (``swap_call``); a period on the board it did not declare is
# answered {-2, period, ...} before anything is written, and the caller calls again.
# The copy's encoding (``built_from``) goes in with it: how credits keep the board.
# KEYS: periods built ver lock journal encoding, then per period of the copy its shadow z
# raw dz dc seen and its live z raw dz dc seen, then per stale period (on the board, not in
# the copy) its live z raw dz dc seen. ARGV: token, floor, encoding, n, the copy's n
# periods, the stale periods.
SWAP_LUA = """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return {-1} end
local n = tonumber(ARGV[4])
local declared = {}
for i = 5, #ARGV do declared[ARGV[i]] = true end
local undeclared = {-2}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not declared[p] then table.insert(undeclared, p) end
end
if #undeclared > 1 then return undeclared end
local copy = {}  -- a period of the copy -> where its keys start in KEYS
for i = 1, n do copy[ARGV[4 + i]] = 6 + (i - 1) * 10 end
-- The journal is read against the copy's seen sets before anything moves.
local reply = {0}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local bar = string.find(m, '|', 1, true)
  if bar then
    local at = copy[string.sub(m, 1, bar - 1)]
    local event = string.sub(m, bar + 1)
    if not at or redis.call('SISMEMBER', KEYS[at + 5], event) == 0 then
      table.insert(reply, event)
    end
  end
end
for i = 7 + n * 10, #KEYS do redis.call('DEL', KEYS[i]) end
for i = 1, n do
  redis.call('SADD', KEYS[1], ARGV[4 + i])
  local at = copy[ARGV[4 + i]]
  for s = 1, 5 do
    local tmp, live = KEYS[at + s], KEYS[at + 5 + s]
    if redis.call('EXISTS', tmp) == 1 then
      redis.call('RENAME', tmp, live)
      redis.call('PERSIST', live)
    else
      redis.call('DEL', live)
    end
  end
end
for i = 5 + n, #ARGV do redis.call('SREM', KEYS[1], ARGV[i]) end  -- after the SADDs (rule 2)
redis.call('SET', KEYS[6], ARGV[3])
redis.call('INCR', KEYS[2])  -- built counts the swaps: a rebuild since a loss was seen
local version = redis.call('INCR', KEYS[3])
local floor = tonumber(ARGV[2])
if version < floor then
  redis.call('SET', KEYS[3], ARGV[2])
  version = floor
end
reply[1] = version
redis.call('DEL', KEYS[5])
return reply
"""
LOCK_LOST = -1
UNDECLARED_PERIODS = -2


def swap_call(
    keys: BoardKeys, shadow: str, token: str, floor: int, periods: list[str], stale: list[str],
    encoding: str,
) -> tuple[list[str], list[str | int]]:  # fmt: skip
    """KEYS and ARGV of the swap script: the copy (``shadow``, a rebuild's ``tmp``) of
    ``periods``, kept as ``encoding`` (``built_from``), in, the live boards of
    ``stale`` periods out."""
    names = [keys.periods, keys.built, keys.version, keys.lock, keys.journal, keys.encoding]
    for period in periods:
        names += keys.board(period, tmp=shadow) + keys.board(period)
    for period in stale:
        names += keys.board(period)
    return names, [token, floor, encoding, len(periods), *periods, *stale]


# A rebuild's journal started with its expiry in one step: made in two, a connection lost
# between them left a journal no rebuild renews, growing with every credit until some
# later rebuild's swap. KEYS: journal; ARGV: ms
JOURNAL_LUA = """
redis.call('SADD', KEYS[1], '')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# A rebuild's lock (and journal) kept alive while it runs; released only by its holder.
# KEYS: lock journal; ARGV: token, ms
RENEW_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# KEYS: lock; ARGV: token
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# A copy of one period's board as it is at one instant, for a freeze to page over
# (rebuild.freeze_period): credits do not take the board lock, and one applied between two
# page reads of the live board could move a participant across the pages' boundary (read
# twice, or never). The keys the page script reads (z, raw, dz) are copied in one step to
# keys named for the freeze, in the contest's slot, expiring after ARGV[1] ms so a freeze
# that dies leaves nothing; a key the board has not is not in the copy either. COPY is O(N)
# in the board's size (memory copied, nothing ranked). KEYS: z raw dz, then their copies.
SNAPSHOT_LUA = """
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('COPY', KEYS[i], KEYS[i + 3], 'REPLACE')
    redis.call('PEXPIRE', KEYS[i + 3], ARGV[1])
  else
    redis.call('DEL', KEYS[i + 3])
  end
end
return 1
"""

# What a check of a contest's board reads in one step (leaderboards.integrity): {0} when
# not built, {built, 1} while a rebuild runs, else {built, 0, version, credits...}
# (built: how many rebuilds swapped a board in; credits: the cardinality of each seen set
# in KEYS). KEYS: built lock ver, then the seen set of each period asked about
COUNTS_LUA = """
local built = tonumber(redis.call('GET', KEYS[1]) or '0')
if built == 0 then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {built, 1} end
local reply = {built, 0, tonumber(redis.call('GET', KEYS[3]) or '0')}
for i = 4, #KEYS do table.insert(reply, redis.call('SCARD', KEYS[i])) end
return reply
"""


def counts_call(keys: BoardKeys, periods: list[str]) -> list[str]:
    """KEYS of the counts script for ``periods``."""
    return [keys.built, keys.lock, keys.version, *(keys.board(p)[4] for p in periods)]


@dataclass(frozen=True)
class Credit:
    participant_id: uuid.UUID
    period: Period
    delta: int
    tick: int
    occurred_at: datetime
    description: str


def _matching_lines(lines: list[Line], skus: list[str]) -> list[Line]:
    wanted = {s.upper() for s in skus}
    return [line for line in lines if line.sku.upper() in wanted]


def _period(contest: Contest, instant: datetime) -> Period | None:
    return period_at(
        parse_recurrence(contest.recurrence),
        contest.time_zone,
        (contest.starts_at, contest.ends_at),
        instant,
    )


def credit_for(
    contest: Contest,
    event_type: str,
    payload: Source,
    *,
    partner_tier: str,
    partner_groups: frozenset[str] = frozenset(),
) -> tuple[uuid.UUID, int, str] | None:
    """(participant, points, description) for an approval or a won deal under the contest's
    rules, or None when it does not count."""
    if contest.eligible_partner_ids and not listed(
        contest.eligible_partner_ids, str(payload.partner_id)
    ):
        return None
    if contest.eligible_tiers and not listed(contest.eligible_tiers, partner_tier):
        return None
    if contest.eligible_group_ids and not any(
        listed(contest.eligible_group_ids, g) for g in partner_groups
    ):
        return None
    if contest.eligible_regions and not listed(contest.eligible_regions, payload.region):
        return None
    if contest.participant_kind is ParticipantKind.PARTNER:
        participant = payload.partner_id
    elif payload.rep_user_id is not None:
        participant = payload.rep_user_id
    else:
        return None
    lines = payload.lines
    skus = unpack(contest.eligible_skus)
    if skus:
        lines = _matching_lines(lines, skus)
        if not lines:
            return None
        revenue = sum(line.amount_minor for line in lines)
    else:
        revenue = payload.amount_minor
    if payload.currency != contest.currency:
        revenue = 0
    units = sum(line.units for line in lines)
    is_sale = event_type == SALE_APPROVED
    claims = 1 if is_sale else 0
    deals = 1 if event_type == DEAL_WON else 0
    w = contest.weights or {}
    match contest.metric:
        case Metric.REVENUE:
            points = revenue if is_sale else 0
        case Metric.UNITS:
            points = units if is_sale else 0
        case Metric.APPROVED_CLAIMS:
            points = claims
        case Metric.WON_DEALS:
            points = deals
        case Metric.NEW_ARR:
            points = revenue if event_type in NEW_ARR_TYPES else 0
        case Metric.POINTS:
            points = (
                (revenue * w.get("revenue_per_major_unit", 0) // 100 if is_sale else 0)
                + (units * w.get("per_unit", 0) if is_sale else 0)
                + claims * w.get("per_claim", 0)
                + deals * w.get("per_won_deal", 0)
            )
    if points == 0:
        return None
    if abs(points) > limits.MAX_EVENT_SCORE:
        # The inputs are bounded so that this cannot happen (infra.limits); a contest saved
        # before the bounds, or an event from outside them, is cut to the bound, loudly.
        log.warning(
            "contest %s: one event worth %d points capped at %d", contest.id, points,
            limits.MAX_EVENT_SCORE,
        )  # fmt: skip
        points = limits.MAX_EVENT_SCORE if points > 0 else -limits.MAX_EVENT_SCORE
    if isinstance(payload, NewArr):
        what = "new ARR" if event_type == SUBSCRIPTION_STARTED else "expansion ARR"
        return participant, points, f"{what} {payload.currency} {revenue}"
    what = "sale" if is_sale else "won deal"
    return participant, points, f"{what} {payload.currency} {payload.amount_minor} ({units} units)"


def tick_of(period: Period, instant: datetime) -> int:
    return min(int((instant - period.starts_at).total_seconds() // 60), ranking.MAX_TICK)


def event_instant(event_type: str, payload: Source, fallback: datetime) -> datetime:
    if isinstance(payload, NewArr):
        return payload.at
    if isinstance(payload, DealWon):
        return payload.won_at
    return payload.approved_at or fallback


def plan_credit(
    contest: Contest,
    event_type: str,
    payload: Source,
    occurred_at: datetime,
    *,
    partner_tier: str,
    partner_groups: frozenset[str] = frozenset(),
) -> Credit | None:
    instant = event_instant(event_type, payload, occurred_at)
    period = _period(contest, instant)
    if period is None:
        return None
    found = credit_for(
        contest, event_type, payload, partner_tier=partner_tier, partner_groups=partner_groups
    )
    if found is None:
        return None
    participant, points, description = found
    return Credit(participant, period, points, tick_of(period, instant), instant, description)


def target_for(contest: Contest, participant: uuid.UUID | str) -> int:
    """The participant's target (0: none), within ``MAX_TARGET`` (a contest saved before the
    bound is held to it, live and rebuilt alike: the scripts divide by it exactly only there)."""
    return min(int((contest.targets or {}).get(str(participant), 0)), limits.MAX_TARGET)


def credit_call(
    keys: BoardKeys,
    mode: BoardMode,
    *,
    event_id: uuid.UUID | str,
    participant: uuid.UUID | str,
    period_key: str,
    delta: int,
    tick: int,
    target: int,
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of the credit script for one credit."""
    z, raw, dz, dc, seen = keys.board(period_key)
    return (
        [z, raw, dz, dc, seen, keys.built, keys.version, keys.periods, keys.journal,
         keys.encoding],
        [
            str(event_id), str(participant), delta, tick, mode.scale,
            int(mode.rich), int(mode.dense), target, period_key,
        ],
    )  # fmt: skip


async def apply_credit(
    scripts: Scripts,
    keys: BoardKeys,
    mode: BoardMode,
    *,
    event_id: uuid.UUID | str,
    participant: uuid.UUID | str,
    period_key: str,
    delta: int,
    tick: int,
    target: int,
) -> int:
    """Credit once: returns the contest's new version, DUPLICATE, or NOT_BUILT."""
    call_keys, call_args = credit_call(
        keys, mode, event_id=event_id, participant=participant, period_key=period_key,
        delta=delta, tick=tick, target=target,
    )  # fmt: skip
    return int(await scripts.credit(keys=call_keys, args=call_args))


@dataclass(frozen=True)
class BatchItem:
    event_id: uuid.UUID | str
    participant: uuid.UUID | str
    delta: int
    tick: int
    target: int = 0


def credits_call(
    keys: BoardKeys, mode: BoardMode, period_key: str, items: list[BatchItem]
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of the batch credit script for one board."""
    z, raw, dz, dc, seen = keys.board(period_key)
    args: list[str | int] = [mode.scale, int(mode.rich), int(mode.dense), period_key]
    for item in items:
        args += [str(item.event_id), str(item.participant), item.delta, item.tick, item.target]
    return [
        z, raw, dz, dc, seen, keys.built, keys.version, keys.periods, keys.journal, keys.encoding,
    ], args  # fmt: skip


async def apply_credits(
    scripts: Scripts,
    keys: BoardKeys,
    mode: BoardMode,
    period_key: str,
    items: list[BatchItem],
) -> int:
    """Credit many events to one board in one atomic script call (each exactly once):
    returns the new version, DUPLICATE when none was new, or NOT_BUILT. One call per ~1000
    items keeps Redis responsive to others."""
    call_keys, call_args = credits_call(keys, mode, period_key, items)
    return int(await scripts.credit_many(keys=call_keys, args=call_args))


async def queue_credits(
    scripts: Scripts,
    pipe: AnyPipeline,
    keys: BoardKeys,
    mode: BoardMode,
    period_key: str,
    items: list[BatchItem],
) -> None:
    """``apply_credits`` queued on a pipeline (its result comes from ``pipe.execute()``)."""
    call_keys, call_args = credits_call(keys, mode, period_key, items)
    await scripts.credit_many(keys=call_keys, args=call_args, client=pipe)  # type: ignore[arg-type]
