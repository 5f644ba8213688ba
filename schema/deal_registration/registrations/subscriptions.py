from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta

import strawberry
from graphql import GraphQLError
from strawberry import Info

from deal_registration.registrations import notices, repository
from deal_registration.registrations.models import DealStatus
from schema.context import Context
from schema.deal_registration.registrations.types import DealStatusChange
from schema.notices import NOTICE_QUEUE, RecentEvents
from schema.permissions import IsAuthenticated
from schema.relay import parse_global_id, to_global_id

# Changes committed just before a loss was noticed may not have been published yet.
MISSED_MARGIN = timedelta(seconds=5)


def not_found() -> GraphQLError:
    return GraphQLError("No such registration.", extensions={"code": "NOT_FOUND"})


@strawberry.type
class DealRegistrationSubscription:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Status changes of the deal registrations you may see (all of them, or "
        "the one with `id`), as they happen, from any API process. An `id` you may not "
        "read (or no longer may) errors NOT_FOUND.",
    )
    async def deal_registration_status_changed(
        self, info: Info[Context, None], id: strawberry.ID | None = None
    ) -> AsyncGenerator[DealStatusChange, None]:
        principal = info.context.caller
        services = info.context.services
        only = parse_global_id(id, "DealRegistration") if id is not None else None
        if id is not None:
            # One registration: refused unless the caller may read it (a malformed id, an
            # unknown one and one it may not see alike, as a read answers them), now and at
            # every change after.
            async with services.db.read_session() as session:
                if only is None or not await repository.get_readable(session, principal, only):
                    raise not_found()
        if principal.is_partner:
            assert principal.partner_id is not None
            channel = notices.partner_channel(
                services.hub, principal.vendor_id, principal.partner_id
            )
        else:
            channel = notices.vendor_channel(services.hub, principal.vendor_id)
        recent = RecentEvents()
        async with services.hub.listen(channel, maxsize=NOTICE_QUEUE) as listener:
            since = services.clock.now()
            async for raw in listener:
                if raw is None:
                    # The pub/sub connection was lost: notices may be missing. Send the
                    # current status of every registration that changed meanwhile (the
                    # status it came from is not known here: fromStatus is null).
                    now = services.clock.now()
                    async with services.db.read_session() as session:
                        changed = await repository.changed_since(
                            session, principal, since - MISSED_MARGIN
                        )
                    since = now
                    if only is not None and only not in {r.id for r in changed}:
                        async with services.db.read_session() as session:
                            if not await repository.get_readable(session, principal, only):
                                raise not_found()
                    for registration in changed:
                        if only is None or registration.id == only:
                            status = repository.effective_status(registration, now)
                            yield DealStatusChange(
                                registration_id=to_global_id("DealRegistration", registration.id),
                                customer_name=registration.customer_name, from_status=None,
                                to_status=status, status=status,
                                changed_at=registration.updated_at,
                            )  # fmt: skip
                    continue
                notice = json.loads(raw)
                event_id = notice.get("event_id")
                if not recent.first_time(uuid.UUID(event_id) if event_id else None):
                    continue
                registration_id = uuid.UUID(notice["registration_id"])
                if only is not None and registration_id != only:
                    continue
                # A short session per notice, and the caller's own visibility rules.
                async with services.db.read_session() as session:
                    found = await repository.get_readable(session, principal, registration_id)
                if found is None:
                    if only is not None:
                        raise not_found()  # the caller may no longer read it
                    continue
                yield DealStatusChange(
                    registration_id=to_global_id("DealRegistration", found.id),
                    customer_name=found.customer_name,
                    from_status=DealStatus(notice["from_status"])
                    if notice.get("from_status")
                    else None,
                    to_status=DealStatus(notice["to_status"]),
                    status=repository.effective_status(found, services.clock.now()),
                    changed_at=datetime.fromisoformat(notice["at"]),
                )
