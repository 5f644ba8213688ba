"""Python's gql (4.x) against a running channelboard, as a partner's or vendor's Python
integration uses it: HTTPXAsyncTransport and AIOHTTPTransport (queries, mutations with
variables, errors as TransportQueryError, batching, schema introspection), file uploads
with upload_files=True (the multipart request spec), and the websocket transports
(WebsocketsTransport with its default subprotocols, graphql-transport-ws and the legacy
graphql-ws named alone, AIOHTTPWebsocketsTransport): queries and the schema over the socket,
a leaderboard subscription pushed by an approved claim, refusals, pings, the legacy
protocol's keep-alives (gql's keep_alive_timeout), a bad token, closing.

Runs in its own virtual environment (conformance/run makes conformance/.gql-venv from
conformance/requirements-gql.txt); by hand: `conformance/.gql-venv/bin/python
conformance/gql_client.py`. CHANNELBOARD_URL and the demo tokens as for the node scripts
(common.mjs): CHANNELBOARD_TOKEN_REP_ACME / CHANNELBOARD_TOKEN_ADMIN_NORTHWIND, else
`python -m api token EMAIL` from the checkout with the server's CHANNELBOARD_* environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from gql import Client, FileVar, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.aiohttp_websockets import AIOHTTPWebsocketsTransport
from gql.transport.exceptions import (
    TransportClosed,
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("CHANNELBOARD_URL", "http://127.0.0.1:8000/graphql")
WS_URL = "ws" + URL.removeprefix("http")
GTWS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # "graphql-transport-ws"
LEGACY = WebsocketsTransport.APOLLO_SUBPROTOCOL  # "graphql-ws"
UNKNOWN_CONTEST = "Q29udGVzdDowMDAwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA="

passes = failures = 0


def check(name: str, ok: bool, detail: object = "") -> bool:
    global passes, failures
    if ok:
        passes += 1
    else:
        failures += 1
    shown = f"\n     {detail}" if detail and not ok else ""
    print(f"{'ok  ' if ok else 'FAIL'} {name}{shown}")  # noqa: T201 - the check's line
    return ok


async def step(name: str, fn: Callable[[], Awaitable[None]]) -> None:
    try:
        await asyncio.wait_for(fn(), 60)
    except Exception:
        check(name, False, "raised " + traceback.format_exc(limit=4))


def token(email: str) -> str:
    user, domain = email.split("@")
    preset = os.environ.get(f"CHANNELBOARD_TOKEN_{user.upper()}_{domain.split('.')[0].upper()}")
    if preset:
        return preset
    python = ROOT / ".venv/bin/python"
    out = subprocess.run(
        [python, "-m", "api", "token", email], cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(f"channelboard token {email} failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout.strip()


REP = token("rep@acme.example")
ADMIN = token("admin@northwind.example")


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def code(e: TransportQueryError) -> Any:
    return ((e.errors or [{}])[0].get("extensions") or {}).get("code")


def pdf(tag: str) -> bytes:
    return f"%PDF-1.4\n% channelboard gql {tag} {time.time()}\n1 0 obj<<>>endobj\n%%EOF\n".encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


ME = gql("query Me { me { role partner { name } } }")
CONTESTS = gql(
    "query Contests($n: Int) { contests(first: $n) { edges { node { id metric status } } } }"
)
CLAIM = gql("""mutation Claim($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) {
  saleClaim { id state serials { outcome } attachments { filename size sha256 downloadUrl } }
  userErrors { field code message } } }""")
APPROVE = gql("""mutation Approve($id: ID!) { saleClaimApprove(input: {id: $id, note: "gql"}) {
  saleClaim { state } userErrors { code message } } }""")
ATTACH = gql("""mutation Attach($id: ID!, $f: Upload!) {
  saleClaimAttachProof(input: {id: $id, file: $f}) {
  saleClaim { attachments { filename size sha256 } } userErrors { field code message } } }""")
ATTACH_TWO = gql("""mutation AttachTwo($id: ID!, $a: Upload!, $b: Upload!) {
  a: saleClaimAttachProof(input: {id: $id, file: $a}) { userErrors { code } }
  b: saleClaimAttachProof(input: {id: $id, file: $b}) {
    saleClaim { attachments { filename size sha256 } } userErrors { code } } }""")
ATTACH_LIST = gql("""mutation AttachList($id: ID!, $files: [Upload!]!, $key: String) {
  saleClaimAttachProof(input: {id: $id, files: $files, idempotencyKey: $key}) {
  saleClaim { attachments { filename size sha256 downloadUrl } }
  userErrors { field code message } } }""")
BOARD = gql("""subscription Board($id: ID!, $first: Int) {
  leaderboardChanged(contestId: $id, first: $first) {
  contestId version rows { rank score } me { rank score } } }""")


def claim_input(serial: str, proof: FileVar | None = None) -> dict[str, Any]:
    return {
        "input": {
            "serials": [serial],
            "customerName": "Initech",
            "invoiceNumber": f"GQL-{serial}-{time.time()}",
            "saleDate": time.strftime("%Y-%m-%d"),
            "amount": {"amount": "250.00", "currency": "USD"},
            "proof": proof,
        }
    }


async def new_claim(session: Any, proof: bytes | None = None) -> dict[str, Any]:
    """A claim of the rep on a free demo serial of Acme (DEMO-000011 … DEMO-000500)."""
    for _ in range(12):
        serial = f"DEMO-{random.randint(11, 500):06d}"
        file = (
            FileVar(io.BytesIO(proof), filename="invoice.pdf", content_type="application/pdf")
            if proof
            else None
        )
        result = await session.execute(
            CLAIM, variable_values=claim_input(serial, file), upload_files=bool(proof)
        )
        claim = result["saleClaimCreate"]["saleClaim"]
        if claim and claim["serials"][0]["outcome"] == "VALID":
            return dict(claim)
    raise RuntimeError("no free demo serial found")


async def approved_claim() -> None:
    """A claim made and approved: Acme moves on the REVENUE board."""
    async with Client(transport=HTTPXAsyncTransport(URL, headers=bearer(REP))) as rep:
        claim = await new_claim(rep)
    if claim["state"] not in ("APPROVED", "AUTO_APPROVED"):
        async with Client(transport=HTTPXAsyncTransport(URL, headers=bearer(ADMIN))) as admin:
            result = await admin.execute(APPROVE, variable_values={"id": claim["id"]})
            assert not result["saleClaimApprove"]["userErrors"], result


HTTP = {"HTTPXAsyncTransport": HTTPXAsyncTransport, "AIOHTTPTransport": AIOHTTPTransport}
contest_id = ""


async def http_checks(name: str, transport_class: Any) -> None:
    global contest_id
    transport = transport_class(URL, headers=bearer(REP))
    async with Client(transport=transport) as s:
        me = await s.execute(ME)
        media = transport.response_headers.get("content-type", "")
        check(
            f"{name}: query answered (PARTNER_REP of Acme Resellers), application/json",
            me["me"] == {"role": "PARTNER_REP", "partner": {"name": "Acme Resellers"}}
            and media.startswith("application/json"),
            (me, media),
        )
        contests = await s.execute(CONTESTS, variable_values={"n": 10})
        contest_id = next(
            e["node"]["id"]
            for e in contests["contests"]["edges"]
            if e["node"]["metric"] == "REVENUE" and e["node"]["status"] == "LIVE"
        )
        check(f"{name}: a query with variables (a live REVENUE contest)", bool(contest_id))
        bad = await s.execute(CLAIM, variable_values=claim_input("!!"))
        errors = bad["saleClaimCreate"]["userErrors"]
        check(
            f"{name}: a mutation with variables: userErrors MALFORMED_SERIAL on serials.0",
            errors
            and errors[0]["code"] == "MALFORMED_SERIAL"
            and errors[0]["field"] == "serials.0",
            errors,
        )
        for what, doc, expected in [
            (
                "a forbidden mutation",
                "mutation { salesSettingsUpdate(input: {proofRequired: false}) "
                "{ userErrors { code } } }",
                "FORBIDDEN",
            ),
            ("an invalid field", "{ me { noSuchField } }", "GRAPHQL_VALIDATION_FAILED"),
            ("first over 100", "{ contests(first: 1000) { totalCount } }", "PAGE_SIZE_TOO_LARGE"),
        ]:
            try:
                await s.execute(gql(doc))
                check(f"{name}: {what}: TransportQueryError {expected}", False, "no error")
            except TransportQueryError as e:
                check(
                    f"{name}: {what}: TransportQueryError {expected}, with our message",
                    code(e) == expected and str(e).find(e.errors[0]["message"]) >= 0,
                    e.errors,
                )
        try:
            await s.execute_batch([gql("{ me { role } }"), gql("{ __typename }")])
            check(f"{name}: execute_batch refused (docs/security.md)", False, "answered")
        except TransportServerError as e:
            check(
                f"{name}: execute_batch: refused, TransportServerError 400 (docs/security.md)",
                e.code == 400,
                e,
            )
        if transport_class is AIOHTTPTransport:  # (multipart HTTP subscriptions: not served)
            try:
                async for _ in s.subscribe(BOARD, variable_values={"id": contest_id}):
                    break
                check(f"{name}: a subscription over HTTP refused", False, "answered")
            except TransportQueryError as e:
                check(
                    f"{name}: a subscription over HTTP: TransportQueryError OPERATION_NOT_ALLOWED",
                    code(e) == "OPERATION_NOT_ALLOWED",
                    e.errors,
                )
    async with Client(transport=transport_class(URL)) as anonymous:
        try:
            await anonymous.execute(ME)
            check(f"{name}: anonymous: UNAUTHENTICATED", False, "answered")
        except TransportQueryError as e:
            reason = e.errors[0]["extensions"].get("reason")
            check(
                f"{name}: anonymous: UNAUTHENTICATED, reason MISSING_CREDENTIALS",
                code(e) == "UNAUTHENTICATED" and reason == "MISSING_CREDENTIALS",
                e.errors,
            )
    async with Client(
        transport=transport_class(URL, headers=bearer(REP)), fetch_schema_from_transport=True
    ) as s:
        schema = s.client.schema
        check(
            f"{name}: fetch_schema_from_transport (gql's introspection) within the depth limit",
            schema is not None
            and "Upload" in schema.type_map
            and "leaderboardChanged" in schema.subscription_type.fields,
        )


async def upload_checks(name: str, transport_class: Any) -> None:
    async with Client(transport=transport_class(URL, headers=bearer(REP))) as s:
        proof = pdf(f"{name} create")
        claim = await new_claim(s, proof)
        [att] = claim["attachments"]
        check(
            f"{name}: proof on saleClaimCreate (FileVar, upload_files=True): name, size, SHA-256",
            (att["filename"], att["size"], att["sha256"])
            == ("invoice.pdf", len(proof), sha(proof)),
            att,
        )
        async with httpx.AsyncClient(headers=bearer(REP)) as h:
            got = await h.get(httpx.URL(URL).join(att["downloadUrl"]))
        check(
            f"{name}: the downloadUrl returns the same bytes",
            got.status_code == 200 and got.content == proof,
            got.status_code,
        )

        a, b = pdf("a"), b"\x89PNG\r\n\x1a\n" + b"gql png"
        both = await s.execute(
            ATTACH_TWO,
            upload_files=True,
            variable_values={
                "id": claim["id"],
                "a": FileVar(io.BytesIO(a), filename="a.pdf", content_type="application/pdf"),
                "b": FileVar(io.BytesIO(b), filename="b.png", content_type="image/png"),
            },
        )
        atts = {x["filename"]: x["sha256"] for x in both["b"]["saleClaim"]["attachments"]}
        check(
            f"{name}: two files in one request, each stored with its own bytes",
            atts.get("a.pdf") == sha(a) and atts.get("b.png") == sha(b),
            both,
        )

        c, d = pdf(f"{name} list c"), pdf(f"{name} list d")

        def listed() -> dict[str, Any]:
            """The list's variables, with fresh FileVars (a sent one has been read)."""
            return {
                "id": claim["id"],
                "files": [
                    FileVar(io.BytesIO(c), filename="c.pdf", content_type="application/pdf"),
                    FileVar(io.BytesIO(d), filename="d.pdf", content_type="application/pdf"),
                ],
                "key": f"gql-list-{claim['id']}",
            }

        held = len(both["b"]["saleClaim"]["attachments"])
        listed_once = await s.execute(ATTACH_LIST, upload_files=True, variable_values=listed())
        out = listed_once["saleClaimAttachProof"]
        new = (out["saleClaim"] or {}).get("attachments", [])[held:]
        sent = [("c.pdf", sha(c)), ("d.pdf", sha(d))]
        check(
            f"{name}: a list (files: [Upload!]!) in one request: both stored, in order",
            not out["userErrors"] and [(x["filename"], x["sha256"]) for x in new] == sent,
            out,
        )
        again = await s.execute(ATTACH_LIST, upload_files=True, variable_values=listed())
        check(
            f"{name}: the list retried under its idempotencyKey: the same answer, nothing added",
            again == listed_once,
            again,
        )

        on_disk = Path(os.environ.get("TMPDIR", "/tmp")) / f"gql-proof-{os.getpid()}.pdf"
        on_disk.write_bytes(pdf("disk"))
        try:
            r = await s.execute(
                ATTACH,
                upload_files=True,
                variable_values={"id": claim["id"], "f": FileVar(str(on_disk))},
            )
        finally:
            on_disk.unlink()
        names = [x["filename"] for x in r["saleClaimAttachProof"]["saleClaim"]["attachments"]]
        check(
            f"{name}: a file by path, no content type given: stored under its name",
            on_disk.name in names,
            r,
        )

        if transport_class is AIOHTTPTransport:

            async def stream() -> Any:
                yield b"%PDF-1.4\n"
                for _ in range(64):
                    yield b" " * 1024

            file = FileVar(stream(), filename="stream.pdf", content_type="application/pdf")
            r = await s.execute(
                ATTACH, upload_files=True, variable_values={"id": claim["id"], "f": file}
            )
            last = r["saleClaimAttachProof"]["saleClaim"]["attachments"][-1]
            check(
                f"{name}: a stream (an async generator, sent chunked): stored whole",
                last["filename"] == "stream.pdf" and last["size"] == 9 + 64 * 1024,
                last,
            )

        for what, file, expected in [
            (
                "a text file",
                FileVar(io.BytesIO(b"just text"), filename="notes.txt", content_type="text/plain"),
                "UNSUPPORTED_FILE_TYPE",
            ),
            (
                "an empty file",
                FileVar(io.BytesIO(b""), filename="empty.pdf", content_type="application/pdf"),
                "EMPTY_FILE",
            ),
            (
                "a file just over 10 MiB",
                FileVar(io.BytesIO(b"%PDF-1.4\n" + b" " * (10 << 20)), filename="big.pdf"),
                "FILE_TOO_LARGE",
            ),
        ]:
            r = await s.execute(
                ATTACH, upload_files=True, variable_values={"id": claim["id"], "f": file}
            )
            errors = r["saleClaimAttachProof"]["userErrors"]
            check(
                f"{name}: {what}: userErrors {expected}",
                [e["code"] for e in errors] == [expected],
                errors,
            )
        try:
            huge = FileVar(io.BytesIO(b"%PDF-1.4\n" + b" " * (12 << 20)), filename="huge.pdf")
            await s.execute(
                ATTACH, upload_files=True, variable_values={"id": claim["id"], "f": huge}
            )
            check(f"{name}: a 12 MiB body refused", False, "answered")
        except TransportQueryError as e:
            check(
                f"{name}: a 12 MiB body: TransportQueryError PAYLOAD_TOO_LARGE",
                code(e) == "PAYLOAD_TOO_LARGE",
                e.errors,
            )


WS = {
    "WebsocketsTransport (default subprotocols)": lambda **kw: WebsocketsTransport(
        url=WS_URL, **kw
    ),
    "WebsocketsTransport graphql-transport-ws": lambda **kw: WebsocketsTransport(
        url=WS_URL, subprotocols=[GTWS], **kw
    ),
    "WebsocketsTransport legacy graphql-ws": lambda **kw: WebsocketsTransport(
        url=WS_URL, subprotocols=[LEGACY], **kw
    ),
    "AIOHTTPWebsocketsTransport (default subprotocols)": lambda **kw: AIOHTTPWebsocketsTransport(
        url=WS_URL, **kw
    ),
}


async def ws_checks(name: str, make: Callable[..., Any]) -> None:
    legacy = "legacy" in name
    # gql pings every 0.5 s; its pong_timeout defaults to half that, which a loaded machine
    # missed (the connection then failed with "No pong received after 0.25 seconds"): the
    # pongs are checked for, not timed.
    kw: dict[str, Any] = (
        {"keep_alive_timeout": 20} if legacy else {"ping_interval": 0.5, "pong_timeout": 10}
    )
    transport = make(init_payload=bearer(REP), **kw)
    async with Client(transport=transport, fetch_schema_from_transport=True) as s:
        check(
            f"{name}: {'graphql-ws' if legacy else 'graphql-transport-ws'} negotiated",
            transport.subprotocol == (LEGACY if legacy else GTWS),
            transport.subprotocol,
        )
        me = await s.execute(ME)
        check(
            f"{name}: a query answered, the schema fetched over the socket",
            me["me"]["role"] == "PARTNER_REP" and s.client.schema is not None,
            me,
        )

        updates: list[dict[str, Any]] = []
        first = asyncio.Event()

        async def watch() -> None:
            async for result in s.subscribe(BOARD, variable_values={"id": contest_id, "first": 5}):
                updates.append(result["leaderboardChanged"])
                first.set()
                if len(updates) == 2:
                    break  # (gql sends complete / stop)

        task = asyncio.create_task(watch())
        await asyncio.wait_for(first.wait(), 15)
        await approved_claim()
        await asyncio.wait_for(task, 20)
        check(
            f"{name}: leaderboardChanged: a snapshot, then a push after an approved claim",
            len(updates) == 2
            and updates[1]["version"] > updates[0]["version"]
            and updates[1]["me"]["score"] > updates[0]["me"]["score"],
            updates,
        )

        for what, variables, expected in [
            ("an unknown contest", {"id": UNKNOWN_CONTEST}, "NOT_FOUND"),
            (
                "a variable of the wrong type",
                {"id": UNKNOWN_CONTEST, "first": "ten"},
                "GRAPHQL_VALIDATION_FAILED",
            ),
        ]:
            try:
                async for result in s.subscribe(BOARD, variable_values=variables):
                    check(f"{name}: {what}: refused", False, result)
                check(f"{name}: {what}: refused", False, "ended with no error")
            except TransportQueryError as e:
                check(
                    f"{name}: {what}: TransportQueryError {expected}", code(e) == expected, e.errors
                )

        if not legacy:
            await asyncio.sleep(1.2)  # (two of gql's pings, each answered)
            await transport.send_ping({"n": 1})
            await asyncio.wait_for(transport.pong_received.wait(), 5)
            me = await s.execute(ME)
            check(
                f"{name}: pings answered (ping_interval 0.5 s), the socket still serves",
                transport.close_exception is None and me["me"]["role"] == "PARTNER_REP",
            )
    closed = transport.close_exception
    check(
        f"{name}: closed by the client, cleanly",
        isinstance(closed, TransportClosed) and "by user" in str(closed),
        repr(closed),
    )

    bad = make(init_payload=bearer("nope"))
    try:
        async with Client(transport=bad) as s:
            await s.execute(ME)
        check(f"{name}: a bad token refused", False, "connected")
    except TransportServerError as e:  # legacy: connection_error with our payload, then 4403
        check(
            f"{name}: a bad token: connection_error UNAUTHENTICATED INVALID_TOKEN",
            legacy and "INVALID_TOKEN" in str(e),
            e,
        )
    except TransportConnectionFailed as e:  # graphql-transport-ws: closed 4403
        if isinstance(bad, AIOHTTPWebsocketsTransport):  # (gql keeps no close code here)
            check(f"{name}: a bad token: the socket closed", not legacy, repr(e))
        else:
            rcvd = getattr(getattr(e.__cause__, "rcvd", None), "code", None)
            check(
                f"{name}: a bad token: the socket closed with 4403",
                not legacy and rcvd == 4403,
                repr(e.__cause__),
            )


async def legacy_keep_alive_checks() -> None:
    """gql's keep_alive_timeout on the legacy protocol: gql closes the socket when no `ka`
    arrives within it. The server sends one right after connection_ack, then one per period
    (CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS as it was started with: 2 s under
    conformance/run, 15 s by default): an idle socket with a timeout 1 s above the period
    outlives 2 s more than it idle and still serves (with no `ka`, or only the first, gql
    failed it at the timeout)."""
    period = float(os.environ.get("CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS") or 15)
    timeout, idle = period + 1, period + 2
    name = f"WebsocketsTransport legacy graphql-ws, keep_alive_timeout {timeout:g} s"
    transport = WebsocketsTransport(
        url=WS_URL, subprotocols=[LEGACY], init_payload=bearer(REP), keep_alive_timeout=timeout
    )
    async with Client(transport=transport) as s:
        await asyncio.sleep(idle)
        check(f"{name}: still open after {idle:g} s idle", transport.close_exception is None)
        me = await s.execute(ME)
        check(f"{name}: a query answered after", me["me"]["role"] == "PARTNER_REP", me)


async def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    # (idle most of its time: it runs beside the other checks)
    keep_alive = asyncio.create_task(step("legacy keep-alive", legacy_keep_alive_checks))
    for name, transport_class in HTTP.items():
        await step(f"{name}: HTTP", lambda n=name, t=transport_class: http_checks(n, t))
    for name, transport_class in HTTP.items():
        await step(f"{name}: uploads", lambda n=name, t=transport_class: upload_checks(n, t))
    for name, make in WS.items():
        await step(f"{name}: websockets", lambda n=name, m=make: ws_checks(n, m))
    await keep_alive
    print(f"gql: {passes} passed, {failures} failed")  # noqa: T201 - the summary
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    asyncio.run(main())
