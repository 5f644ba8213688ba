"""The settings a command runs with."""

from __future__ import annotations

import getpass

import typer
from rich.console import Console

from api.settings import Settings, SettingsError

console = Console(stderr=True, soft_wrap=True)


def load_settings() -> Settings:
    """From the environment; a bad value ends the command with its message (exit 2)."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def operator() -> str:
    """Who runs this command (the login name), as the audit log names an operator."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): say so
        return "unknown"
