"""The fast path for `leaderboardChanged` over graphql-transport-ws.

Strawberry executes a subscription's selection set once per subscriber per event. Here a
`leaderboardChanged` operation is recognised when it arrives, validated against the schema
once per distinct document, and joined to the contest's fan-out group for "same document,
same variables, same visibility". Per change the group executes the document once (without
its `me` field, with no caller's principal, on the board as nobody in particular sees it;
again for each participant whose own row is on the board, with that row as its own),
serialises it once, and every subscriber gets those bytes with its own `me` spliced in: a
small JSON object projected from its standing (fetched for all subscribers in one pipelined
Redis round trip) along the client's `me` selection.

Anything else (other operations, `me` inside fragments, directives) takes strawberry's
ordinary path, which produces the same JSON (tests compare the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    get_operation_ast,
)
from graphql.execution.values import get_argument_values, get_variable_values
from starlette.websockets import WebSocketDisconnect

from infra.outages import is_unavailable
from infra.ws_direct import DirectSocket, direct_socket, text_frame
from leaderboards.fanout import Fanout, Snapshot, Subscriber
from leaderboards.models import Contest, ContestStatus, ParticipantKind
from leaderboards.reads import RowView, StandingView, Viewer, viewer_for
from schema.context import Context, Services
from schema.document_limits import gate_of
from schema.extensions import service_unavailable_error
from schema.leaderboards.subscriptions import (
    cancelled_error,
    contest_for_subscription,
    not_found_error,
    update_of,
)
from schema.relay import check_page_size, to_global_id
from schema.stream_errors import locate

FIELD = "leaderboardChanged"


@dataclass(frozen=True)
class Plan:
    document: DocumentNode  # without the `me` field
    operation_name: str | None
    variables: dict[str, Any]
    response_key: str
    field: FieldNode  # as the client wrote it (its location)
    me: list[tuple[str, SelectionSetNode | None]]  # (response key, selection) per `me`
    fragments: dict[str, FragmentDefinitionNode]
    contest_id: str
    first: int
    shape: str

    def locate(self, error: GraphQLError) -> GraphQLError:
        """``error`` as the field's (``locations`` and ``path``), as graphql-core locates
        an error of the field on strawberry's path (schema.stream_errors)."""
        return locate(error, [self.field], self.response_key)


def _has_directives(node: Any) -> bool:
    if getattr(node, "directives", None):
        return True
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return False
    return any(_has_directives(s) for s in selection_set.selections)


# Distinct (document, variables, operation name) whose plans are kept, and distinct
# (plan, participant kind, audience) whose renderers are: thousands of subscribers asking
# the same thing share one of each instead of holding a parsed copy per operation.
SHARED_PLANS = 256


class FastPath:
    def __init__(self, schema: Any, services: Services) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.services = services
        self._plans: dict[tuple[str, str | None, str], Plan | None] = {}
        self._renderers: dict[tuple[str, ParticipantKind, str], JsonRenderer] = {}

    def renderer(self, plan: Plan, kind: ParticipantKind, audience: str) -> JsonRenderer:
        """The group's renderer (a fan-out group is one plan and audience)."""
        key = (plan.shape, kind, audience)
        found = self._renderers.get(key)
        if found is None or found.plan is not plan:
            found = _keep(self._renderers, key, JsonRenderer(self, plan, kind))
        return found

    def _document(self, query: str, name: str | None) -> DocumentNode | None:
        """The document if it passes the limits every path applies (the caller has sent
        an error otherwise) and is valid; None leaves it to strawberry's path."""
        gate = gate_of(self.schema)
        doc = gate.check(query, name)
        if isinstance(doc, GraphQLError) or gate.validate(self.graphql_schema, doc):
            return None
        return doc

    async def run(self, handler: Any, operation: Any, plan: Plan) -> bool:
        return await run(self, handler, operation, plan)

    def plan(self, query: str, variables: dict[str, Any] | None, name: str | None) -> Plan | None:
        """How to serve this operation on the fast path (shared by every operation asking
        the same), or None for strawberry's path."""
        key = (query, name, json.dumps(variables, sort_keys=True, default=str))
        if key in self._plans:
            return self._plans[key]
        return _keep(self._plans, key, self._plan(query, variables, name))

    def _plan(self, query: str, variables: dict[str, Any] | None, name: str | None) -> Plan | None:
        doc = self._document(query, name)
        if doc is None:
            return None
        op = get_operation_ast(doc, name)
        if op is None or op.operation is not OperationType.SUBSCRIPTION or op.directives:
            return None
        selections = op.selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode):
            return None
        field = selections[0]
        if field.name.value != FIELD or _has_directives(field):
            return None
        coerced = get_variable_values(
            self.graphql_schema, op.variable_definitions or (), variables or {}
        )
        if isinstance(coerced, list):
            return None
        subscription_type = self.graphql_schema.subscription_type
        assert subscription_type is not None
        try:
            args = get_argument_values(subscription_type.fields[FIELD], field, coerced)
        except GraphQLError:
            # (null for `first`, declared `Int` and so valid): strawberry's path refuses it
            # as graphql-core does, with its location and path; here it was a bug.
            return None
        me: list[tuple[str, SelectionSetNode | None]] = []
        kept = []
        for sel in field.selection_set.selections if field.selection_set else ():
            if isinstance(sel, FieldNode) and sel.name.value == "me":
                me.append(((sel.alias or sel.name).value, sel.selection_set))
            elif isinstance(sel, FieldNode):
                kept.append(sel)
            else:
                return None  # fragments at this level: left to strawberry
        new_field = FieldNode(
            alias=field.alias, name=field.name, arguments=field.arguments,
            directives=field.directives,
            selection_set=SelectionSetNode(selections=tuple(kept)),
        )  # fmt: skip
        new_op = OperationDefinitionNode(
            operation=op.operation, name=op.name, variable_definitions=op.variable_definitions,
            directives=op.directives, selection_set=SelectionSetNode(selections=(new_field,)),
        )  # fmt: skip
        fragments = {
            d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)
        }
        stripped = DocumentNode(definitions=(new_op, *fragments.values()))
        shape = hashlib.sha1(
            (query + json.dumps(coerced.coerced, sort_keys=True, default=str)).encode()
        ).hexdigest()
        return Plan(
            document=stripped, operation_name=name, variables=dict(variables or {}),
            response_key=(field.alias or field.name).value, field=field, me=me, fragments=fragments,
            contest_id=str(args["contestId"]), first=int(args.get("first", 10)), shape=shape,
        )  # fmt: skip


K = TypeVar("K")
V = TypeVar("V")


def _keep(kept: dict[K, V], key: K, value: V) -> V:
    if len(kept) >= SHARED_PLANS:
        del kept[next(iter(kept))]  # the oldest
    kept[key] = value
    return value


class JsonRenderer:
    """Executes the group's document once per change (and once per participant whose own
    row is on the board); splices each subscriber's `me`."""

    def __init__(self, fast: FastPath, plan: Plan, kind: ParticipantKind):
        self.fast = fast
        self.plan = plan
        # The document is executed for every member of the group alike: with nobody's
        # principal (its fields read only the snapshot, never the caller).
        self.context = Context(services=fast.services)
        self.kind = kind

    async def shared(self, snapshot: Snapshot) -> Any:
        if snapshot.status is ContestStatus.CANCELLED:
            return self.plan.locate(cancelled_error())
        result = execute(
            self.fast.graphql_schema, self.plan.document, root_value=update_of(snapshot, None),
            context_value=self.context, variable_values=self.plan.variables,
            operation_name=self.plan.operation_name,
        )  # fmt: skip
        if isinstance(result, Awaitable):
            result = await result
        data = (result.data or {}).get(self.plan.response_key) or {}
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        errors = [e.formatted for e in result.errors or ()]
        return (body[:-1], len(data) > 0, errors, {})

    def not_found(self) -> GraphQLError:
        return self.plan.locate(not_found_error())

    def message(self, sub: Subscriber, shared: Any, me: StandingView | None) -> Any:
        if isinstance(shared, GraphQLError):
            return shared
        prefix, non_empty, errors, cache = shared
        # Subscribers with the same participant (the reps of one partner) and operation id
        # get the very same Push: its text and frame are built once per change.
        key = me.standing.participant_id if me is not None else None
        push = cache.get((sub.tag, key))
        if push is None:
            body = cache.get(key)
            if body is None:
                body = cache[key] = self._body(prefix, non_empty, errors, me)
            text = f'{{"id":{json.dumps(sub.tag)},{body}'
            push = cache[(sub.tag, key)] = Push(text, text_frame(text.encode()))
        return push

    def _body(
        self, prefix: str, non_empty: bool, errors: list[Any], me: StandingView | None
    ) -> str:
        parts = [prefix]
        for i, (name, selection) in enumerate(self.plan.me):
            value = (
                None if me is None
                else project(standing_json(me, self.kind), selection, self.plan.fragments)
            )  # fmt: skip
            sep = "," if (non_empty or i > 0) else ""
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            parts.append(f"{sep}{json.dumps(name)}:{text}")
        extra = "" if not errors else ',"errors":' + json.dumps(errors, separators=(",", ":"))
        return (
            f'"type":"next","payload":{{"data":{{{json.dumps(self.plan.response_key)}:'
            f"{''.join(parts)}}}}}{extra}}}}}"
        )


@dataclass(frozen=True, slots=True)
class Push:
    text: str  # the graphql-transport-ws `next` message
    frame: bytes  # the same, as a ready websocket frame


def _participant_json(row: RowView, kind: ParticipantKind) -> dict[str, Any]:
    type_name = "Partner" if kind is ParticipantKind.PARTNER else "User"
    return {
        "__typename": "Participant",
        "id": str(to_global_id(type_name, row.participant_id)) if row.participant_id else None,
        "name": row.name,
        "isYou": row.is_you,
    }


def standing_json(view: StandingView, kind: ParticipantKind) -> dict[str, Any]:
    """The `Standing` type as JSON (schema.leaderboards.types.Standing.of, field for field)."""
    s = view.standing
    nemesis = None
    if view.nemesis is not None:
        n = view.nemesis
        nemesis = {
            "__typename": "LeaderboardRow", "rank": n.rank,
            "participant": _participant_json(n, kind), "score": n.score,
            "gapToAbove": n.gap_to_above,
        }  # fmt: skip
    return {
        "__typename": "Standing",
        "participant": _participant_json(view.participant, kind),
        "rank": s.rank, "score": s.score,
        "gapToNext": s.gap_to_next if nemesis is not None else None,
        "percentile": s.percentile, "tiedWith": s.tied_with, "nemesis": nemesis,
        "tieRule": view.tie_rule, "totalParticipants": s.total, "period": view.period.key,
    }  # fmt: skip


def project(
    value: Any, selection: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> Any:
    """Shape a JSON value like GraphQL would for this selection (aliases, fragments)."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [project(v, selection, fragments) for v in value]
    out: dict[str, Any] = {}
    for sel in selection.selections:
        if isinstance(sel, FieldNode):
            key = (sel.alias or sel.name).value
            out[key] = project(value.get(sel.name.value), sel.selection_set, fragments)
        elif isinstance(sel, InlineFragmentNode):
            out.update(project(value, sel.selection_set, fragments))
        elif isinstance(sel, FragmentSpreadNode):
            out.update(project(value, fragments[sel.name.value].selection_set, fragments))
    return out


class DirectSink:
    """The whole delivery of an operation whose socket uvicorn lets us write to: the feed's
    pass writes its frame (no task wakes), so the operation needs no task while it is idle.
    A socket that is behind gets the latest message once it drains (a short task, only
    then); the final push is followed by `complete`, an error ends the operation."""

    __slots__ = ("drainer", "fanout", "contest", "handler", "operation", "pending", "socket",
                 "sub", "ending")  # fmt: skip

    def __init__(
        self, socket: DirectSocket, handler: Any, operation: Any, fanout: Fanout, contest: Any
    ) -> None:
        self.socket = socket
        self.handler = handler
        self.operation = operation
        self.fanout = fanout
        self.contest = contest
        self.sub: Subscriber | None = None  # set once joined (the first push comes before)
        self.pending: Push | None = None
        self.drainer: asyncio.Task[None] | None = None
        self.ending: asyncio.Task[None] | None = None

    @property
    def current(self) -> bool:
        # Once the client completed the operation, nothing more is sent for it.
        return self.handler.operations.get(self.operation.id) is self.operation

    def __call__(self, message: Any) -> bool:
        if self.ending is not None:
            return True  # consumed: dropped
        if not self.current:  # completed (or its id taken over): leave the feed
            self.ending = asyncio.create_task(self.stop())
            return True
        if isinstance(message, GraphQLError):
            self.end(message)
        elif isinstance(message, Push):
            if self.pending is None and self.socket.write_if_keeping_up(message.frame):
                if self.sub is not None and self.sub.done:
                    self.end()
            elif self.socket.open:
                self.pending = message  # behind: the latest only, once it drains
                if self.drainer is None:
                    self.drainer = asyncio.create_task(self._drain())
        return True

    def joined(self, sub: Subscriber) -> None:
        """The first push has been offered: if it was the final one, end now."""
        self.sub = sub
        if sub.done and self.pending is None and self.current:
            self.end()

    async def _drain(self) -> None:
        try:
            while self.pending is not None:
                await self.socket.drained()
                push, self.pending = self.pending, None
                if not self.current or not self.socket.write(push.frame):
                    return
            if self.sub is not None and self.sub.done:
                self.end()
        finally:
            self.drainer = None

    def end(self, error: GraphQLError | None = None) -> None:
        if self.ending is None:
            self.ending = asyncio.create_task(self._end(error))

    async def _end(self, error: GraphQLError | None) -> None:
        with contextlib.suppress(Exception):  # the client may be gone already
            if self.current:
                if error is not None:
                    await end_with_errors(self.operation, [error])
                else:
                    message = {"id": self.operation.id, "type": "complete"}
                    await self.operation.send_operation_message(message)
        await self.stop()

    async def stop(self) -> None:
        """Leave the feed (the operation completed, or its connection ended)."""
        if self.handler.parked.get(self.operation.id) is self:
            del self.handler.parked[self.operation.id]
        if self.drainer is not None:
            self.drainer.cancel()
        if self.sub is not None:
            await self.fanout.leave(self.contest.id, self.sub)


async def end_with_errors(operation: Any, errors: list[GraphQLError]) -> None:
    """End a graphql-transport-ws operation on errors its execution raised (a contest the
    caller may not read, or no longer may, a cancelled one, a page too large, an outage),
    located at the field (``Plan.locate``): a `next` with no data and the errors, then
    `complete`, as strawberry's path ends an operation whose resolver raised (and as the
    protocol's reference server ends one whose source stream could not be made). The
    `error` message is for operations refused before they run (the document, the
    operation limit)."""
    payload = {"data": None, "errors": [error.formatted for error in errors]}
    await operation.send_operation_message({"id": operation.id, "type": "next", "payload": payload})
    # Unless the client completed it meanwhile (its id may be another operation's now).
    if operation.handler.operations.get(operation.id) is operation:
        await operation.send_operation_message({"id": operation.id, "type": "complete"})


async def run(fast: FastPath, handler: Any, operation: Any, plan: Plan) -> bool:
    """Serve one operation on the fast path: True when it stays joined with no task (its
    DirectSink delivers; the handler stops it), False once it ended."""
    context: Context = handler.context
    principal = context.principal
    services = fast.services
    try:
        if principal is None:
            raise GraphQLError("Authentication required.", extensions={"code": "UNAUTHENTICATED"})
        limit = check_page_size(plan.first, services.max_page_size)
        contest = await contest_for_subscription(services, principal, plan.contest_id)
    except GraphQLError as error:
        await end_with_errors(operation, [plan.locate(error)])
        return False
    viewer = viewer_for(principal, contest)
    renderer = fast.renderer(plan, contest.participant_kind, viewer.audience)
    ws = handler.websocket.ws
    direct = direct_socket(ws.scope)
    fanout = services.fanout

    try:
        if direct is None:
            await _serve(fanout, contest, viewer, limit, renderer, plan, operation, handler)
            return False
        sink = DirectSink(direct, handler, operation, fanout, contest)
        sub = await fanout.join(
            contest, viewer, first=limit, renderer=renderer, shape=plan.shape,
            tag=operation.id, sink=sink,
        )  # fmt: skip
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # Redis is down as the operation starts: a coded error, as strawberry's path sends
        # (an open operation rides out an outage and resumes instead).
        await end_with_errors(operation, [plan.locate(service_unavailable_error())])
        return False
    if not sink.current:  # completed while joining (its id may be another's now)
        await fanout.leave(contest.id, sub)
        return False
    handler.parked[operation.id] = sink
    # This task ends now (strawberry would keep it, finished), and the plan holds the
    # document (the operation's copy of the query text is not needed any more).
    operation.task = None
    operation.query, operation.variables = "", None
    sink.joined(sub)
    return True


async def _serve(
    fanout: Fanout, contest: Contest, viewer: Viewer, limit: int, renderer: JsonRenderer,
    plan: Plan, operation: Any, handler: Any,
) -> None:  # fmt: skip
    """A server we cannot write to directly: the operation's task delivers."""
    ws = handler.websocket.ws
    async with fanout.subscribe(
        contest, viewer, first=limit, renderer=renderer, shape=plan.shape, tag=operation.id,
    ) as sub:  # fmt: skip
        while True:
            await sub.wait()
            message = sub.take()
            if isinstance(message, GraphQLError):
                await end_with_errors(operation, [message])
                return
            if isinstance(message, Push):
                try:
                    await ws.send_text(message.text)
                except (WebSocketDisconnect, RuntimeError, OSError):
                    return
            if sub.done and sub.latest is None:
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
                return
