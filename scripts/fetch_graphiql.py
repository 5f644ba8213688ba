"""Re-fetch the GraphiQL page's assets, pinned, from the npm registry (with `npm pack`).

    python scripts/fetch_graphiql.py

writes api/graphiql/assets/: the UMD builds of React, ReactDOM, GraphiQL and its explorer
plugin, their licences, and manifest.json (package, version, sha384 per file) that the page
is rendered from. Change a version below, run this, check the page in a browser (see
tests/api/test_graphiql.py), and commit the folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "api" / "graphiql" / "assets"

# package -> (version, {file in the package: file served}, licence file in the package)
PACKAGES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "react": ("18.2.0", {"umd/react.production.min.js": "react.production.min.js"}, "LICENSE"),
    "react-dom": (
        "18.2.0",
        {"umd/react-dom.production.min.js": "react-dom.production.min.js"},
        "LICENSE",
    ),
    "graphiql": (
        "3.8.3",
        {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"},
        "LICENSE",
    ),
    "@graphiql/plugin-explorer": (
        "1.0.2",
        {"dist/index.umd.js": "plugin-explorer.umd.js", "dist/style.css": "plugin-explorer.css"},
        None,  # MIT (package.json); the package ships no licence file
    ),
}


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def main() -> None:
    manifest: dict[str, dict[str, str]] = {}
    ASSETS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for package, (version, files, licence) in PACKAGES.items():
            spec = f"{package}@{version}"
            out = subprocess.run(
                ["npm", "pack", "--silent", spec], cwd=tmp, check=True, capture_output=True,
                text=True,
            )  # fmt: skip
            tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as tar:
                for inner, served in files.items():
                    member = tar.extractfile(f"package/{inner}")
                    assert member is not None, f"{spec} has no {inner}"
                    data = member.read()
                    (ASSETS / served).write_bytes(data)
                    manifest[served] = {"package": package, "version": version,
                                        "integrity": sri(data)}  # fmt: skip
                if licence:
                    member = tar.extractfile(f"package/{licence}")
                    assert member is not None
                    name = package.replace("@", "").replace("/", "-")
                    (ASSETS / f"LICENSE.{name}").write_bytes(member.read())
            sys.stdout.write(f"{spec}: {', '.join(files.values())}\n")
    (ASSETS / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
