"""`import wanllmdb` loads nothing heavy: no HTTP client, no JSON, no threads."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_import_loads_nothing_heavy():
    code = (
        "import sys, wanllmdb\n"
        "print(','.join(m for m in ('http.client', 'json', 'threading', 'typing', 'wanllmdb._run', 'wanllmdb._transport') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO / "python",
        check=True,
    )
    assert out.stdout.strip() == ""


def test_public_names_are_listed_and_resolve():
    import wanllmdb

    for name in wanllmdb.__all__:
        if name not in ("run", "summary"):
            assert getattr(wanllmdb, name) is not None, name
