"""The `channelboard` command: its own commands, and the groups of the other modules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from api.cli import (
    attachments,
    audit,
    deals,
    dispatch,
    exports,
    idempotency,
    leaderboards,
    outbox,
    partners,
    serials,
    signals,
    subscriptions,
    vendors,
)
from api.cli.failures import INTERRUPTED, INTERRUPTED_EXIT, explain
from api.cli.settings import load_settings
from api.settings import SettingsError

app = typer.Typer(
    help="channelboard: GraphQL partner data API with live contest leaderboards.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)
app.add_typer(serials.app, name="serials")
app.add_typer(subscriptions.app, name="subscriptions")


@app.command()
def migrate(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply database migrations (upgrade to REVISION, default head)."""
    from api import migrations  # noqa: PLC0415

    settings = load_settings()
    asyncio.run(migrations.upgrade(settings.database_url, revision))
    console.print(
        f"database migrated to {migrations.head_revision() if revision == 'head' else revision}"
    )


@app.command()
def demo() -> None:
    """Seed demo data (idempotent): a vendor, partners and a user of every role, and a
    second vendor with a partner and users of its own."""
    from api.cli.demo import seed_demo  # noqa: PLC0415

    settings = load_settings()
    summary = asyncio.run(seed_demo(settings))
    table = Table(title="Demo users (get a token: channelboard token EMAIL)")
    table.add_column("vendor")
    table.add_column("email")
    table.add_column("role")
    table.add_column("partner")
    for vendor, email, role, partner in summary:
        table.add_row(vendor, email, role, partner or "-")
    Console().print(table)


@app.command()
def token(
    user_email: str | None = typer.Argument(
        None, metavar="EMAIL", help="The user to mint a token for (omit with --subject)."
    ),
    ttl: int = typer.Option(
        12 * 3600, "--ttl", min=1, max=366 * 24 * 3600, help="Lifetime in seconds (a year at most)."
    ),
    subject: str | None = typer.Option(
        None,
        "--subject",
        help="Mint a token for this identity-provider subject instead, "
        "bound to no user yet: what invitationAccept is called with.",
    ),
    email: str | None = typer.Option(None, "--email", help="With --subject: the email claim."),
    email_verified: bool = typer.Option(
        False, "--email-verified", help="With --subject: claim email_verified: true."
    ),
) -> None:
    """Print a development JWT for the user with EMAIL, or for an identity-provider
    subject with --subject (HS256 shared secret only)."""
    from api.auth import issue_subject_token  # noqa: PLC0415
    from api.cli.demo import token_for  # noqa: PLC0415

    settings = load_settings()
    if settings.production:
        console.print("[red]refusing to mint tokens in production[/red]")
        raise typer.Exit(2)
    if subject is not None:
        if user_email is not None:
            console.print("[red]give either EMAIL or --subject, not both[/red]")
            raise typer.Exit(2)
        print(  # noqa: T201 - the token is the command's output
            issue_subject_token(
                settings.jwt,
                subject=subject,
                email=email,
                email_verified=email_verified,
                ttl=timedelta(seconds=ttl),
            )  # fmt: skip
        )
        return
    if user_email is None:
        console.print("[red]give the user's EMAIL, or --subject SUB[/red]")
        raise typer.Exit(2)
    result = asyncio.run(token_for(settings, user_email, timedelta(seconds=ttl)))
    if result is None:
        console.print(f"[red]no user with email {user_email!r}[/red] (run 'channelboard demo'?)")
        raise typer.Exit(1)
    print(result)  # noqa: T201 - the token is the command's output


@app.command("export-schema")
def export_schema(
    output: Path = typer.Option(Path("schema.graphql"), "--output", "-o"),
) -> None:
    """Write the GraphQL schema (SDL) to schema.graphql, only ever whole."""
    from api.cli.whole_files import whole_file  # noqa: PLC0415
    from schema.root import build_schema  # noqa: PLC0415

    sdl = build_schema().as_str() + "\n"
    with whole_file(output) as stream:
        stream.write(sdl)
    console.print(f"wrote {output}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1),
) -> None:
    """Run the API with uvicorn. On the embedded SQLite default it migrates first; against
    any other database it refuses to serve an out-of-date schema."""
    import uvicorn  # noqa: PLC0415

    from api import migrations  # noqa: PLC0415
    from infra.redis import EmbeddedRedis  # noqa: PLC0415

    settings = load_settings()
    if settings.embedded_database:
        asyncio.run(migrations.upgrade(settings.database_url))
    else:
        current = asyncio.run(migrations.database_revision(settings.database_url))
        head = migrations.head_revision()
        if current != head:
            console.print(
                f"[red]the database schema is at {current or 'nothing'}, this code needs "
                f"{head}[/red]: run 'channelboard migrate' first"
            )
            raise typer.Exit(3)
    embedded: EmbeddedRedis | None = None
    with _sigterm_unwinds():
        if settings.redis_url is None:
            # One embedded Redis shared by every worker process.
            embedded = EmbeddedRedis(settings.var_dir / "redis")
            os.environ["CHANNELBOARD_REDIS_URL"] = embedded.start()
        try:
            console.print(f"channelboard on http://{host}:{port}/graphql")
            uvicorn.run(
                "api.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                ws_per_message_deflate=False,
                # Frames over the limit are refused by the protocol (close 1009) before they
                # are buffered; the app checks the same limit for servers started otherwise.
                ws_max_size=settings.limits.ws_max_message_bytes,
                timeout_graceful_shutdown=10,
                log_level=settings.log_level,
                proxy_headers=True,
            )
        finally:
            if embedded is not None:
                embedded.stop()


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (a process manager stopping the server) unwinds the block, so that its
    cleanup (stopping the embedded Redis) runs, then ends the process as SIGTERM does.
    uvicorn ends its graceful shutdown by raising the signal again under the handler it
    found: with the default one the process died there, its cleanup skipped, and the
    embedded Redis outlived it (ended by its parent-death signal about a second later)."""

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


# After the root's own commands: the order `channelboard --help` lists them in.
app.add_typer(deals.app, name="deals")
app.add_typer(leaderboards.app, name="leaderboards")
app.command("simulate")(leaderboards.simulate)
app.command("dispatch")(dispatch.dispatch)
app.add_typer(outbox.app, name="outbox")
app.add_typer(audit.app, name="audit")
app.add_typer(attachments.app, name="attachments")
app.add_typer(idempotency.app, name="idempotency")
app.add_typer(exports.app, name="exports")
app.add_typer(vendors.app, name="vendors")  # issue 12: tenants (operator)
app.add_typer(partners.app, name="partners")
app.add_typer(signals.app, name="signals")  # issue 13: the signal feed


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        app()
    except SettingsError as exc:  # pragma: no cover - load_settings reports most
        console.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
    except SystemExit as exit_:
        # typer ends a command interrupted by Ctrl-C with this status and says nothing.
        if exit_.code == INTERRUPTED_EXIT:
            console.print(f"[yellow]{INTERRUPTED}[/yellow]")
        raise
    except Exception as exc:
        failure = explain(exc, load_settings())
        if failure is None:
            raise
        console.print(f"[red]{failure.message}[/red]")
        sys.exit(failure.exit_code)
