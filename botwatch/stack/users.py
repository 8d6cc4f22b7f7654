"""The dedicated system user OpenSearch runs as when botwatch itself runs as root."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from botwatch.stack.errors import StackError


def ensure_service_user(name: str) -> None:
    """Create a locked system user ``name`` unless it exists."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError(
            f"Could not create the system user {name!r} that OpenSearch runs as.",
            f"create it yourself (`useradd --system {name}`) or set BOTWATCH_OPENSEARCH_USER "
            "to an existing non-root user.",
            proc.stderr,
        )


def grant_traversal(path: Path, user: str) -> None:
    """Let ``user`` reach ``path``: add search (x, not read) permission on parents that lack it.

    OpenSearch runs as ``user`` but its files live under BOTWATCH_HOME, often inside root's
    home directory (mode 0700).
    """
    uid = pwd.getpwnam(user).pw_uid
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == uid or st.st_mode & stat.S_IXOTH:
            continue
        os.chmod(parent, st.st_mode | stat.S_IXOTH)
