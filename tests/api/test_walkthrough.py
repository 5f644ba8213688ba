"""The README's "Set up your program" walkthrough, run as written: its shell blocks, in
order, with bash against a real `channelboard serve` on a fresh var directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- walkthrough:start -->", "<!-- walkthrough:end -->"
# Every step of the walkthrough, in the order the README takes them.
STEPS = (
    "channelboard vendors create", "channelboard token --subject", "invitationAccept",
    "productUpsert", "partnerCreate", "channelboard serials import", "earningProgramCreate",
    "invitationCreate", "salesSettingsUpdate", "saleClaimCreate", "saleClaimApprove",
    "earnings {",
)  # fmt: skip


def walkthrough_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(START) == 1, "one walkthrough:start marker"
    assert readme.count(END) == 1, "one walkthrough:end marker"
    section = readme[readme.index(START) : readme.index(END)]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.S | re.M)


def test_the_walkthrough_takes_every_step_in_order() -> None:
    script = "\n".join(walkthrough_blocks())
    positions = [script.find(step) for step in STEPS]
    missing = [step for step in STEPS if step not in script]
    assert not missing, f"the README walkthrough no longer takes these steps: {missing}"
    assert positions == sorted(positions), "the steps are out of order"
    assert "## Set up your program" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_the_readme_walkthrough_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANNELBOARD_")}
    env.update({
        "CHANNELBOARD_VAR_DIR": str(tmp_path / "var"),
        # `channelboard` is the command of this interpreter's environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.3)
        script = "\n".join(walkthrough_blocks())
        result = subprocess.run(
            ["bash", "-c", script], env={**env, "BASE": f"http://127.0.0.1:{port}"},
            cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    # The last line is the rep's earnings: the approved 1,000.00 USD sale at 8 %.
    earnings = json.loads(result.stdout.strip().splitlines()[-1])["earnings"]
    assert earnings["earned"] == {"formatted": "80.00 USD"}
    texts = {e["kind"]: e["text"] for e in earnings["explanations"]}
    assert texts["PROGRAMS"] == (
        "Your earnings came from Partner Rewards (base program): 80.00 USD."
    )
    assert '"state": "APPROVED"' in result.stdout
