"""Checks for the tools the local stack needs: Java and Maven."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from botwatch.stack.errors import StackError
from botwatch.stack.maven import Maven

MIN_JAVA = 17

_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


@dataclass(frozen=True)
class Java:
    home: Path
    major: int

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "java"


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output (``1.8.0`` -> 8, ``17.0.15`` -> 17)."""
    match = _VERSION_RE.search(version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def find_java(java_home: str | None = None) -> Java:
    """The JDK for Kafka and OpenSearch: ``java_home``, else ``$JAVA_HOME``, else PATH."""
    candidates: list[Path] = []
    for home in (java_home, os.environ.get("JAVA_HOME")):
        if home:
            candidates.append(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    if not candidates:
        raise StackError(
            "Java was not found (no JAVA_HOME and no `java` on PATH).",
            f"install a JDK {MIN_JAVA} or newer "
            "(Debian: `apt-get install openjdk-17-jdk-headless`) "
            "or set BOTWATCH_JAVA_HOME to one.",
        )
    binary = candidates[0]
    if not binary.exists():
        raise StackError(
            f"Java was not found at {binary}.",
            "point BOTWATCH_JAVA_HOME (or JAVA_HOME) at a JDK directory that contains bin/java.",
        )
    proc = subprocess.run(
        [str(binary), "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    major = parse_java_major(proc.stderr + proc.stdout)
    if major is None:
        raise StackError(
            f"Could not tell the version of {binary}.",
            "check that it is a working JDK: run it with -version.",
            proc.stderr,
        )
    if major < MIN_JAVA:
        raise StackError(
            f"Java {major} at {binary} is too old: "
            f"Kafka 4 and OpenSearch 2.19 need Java {MIN_JAVA} or newer.",
            f"install a JDK {MIN_JAVA} or newer and set BOTWATCH_JAVA_HOME to it.",
        )
    return Java(home=binary.parent.parent, major=major)


def find_maven() -> Path:
    """The ``mvn`` executable that fetches Kafka and OpenSearch from Maven Central."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise StackError(
            "Maven (`mvn`) was not found on PATH; botwatch fetches Kafka and OpenSearch with it.",
            "install Maven (Debian: `apt-get install maven`) and run the command again.",
        )
    return Path(mvn)


class Toolchain:
    """Java and Maven, looked up on first use so that `down` and `status` never need them."""

    def __init__(self, java_home: str | None, maven_repo: Path) -> None:
        self._java_home = java_home
        self._maven_repo = maven_repo
        self._java: Java | None = None
        self._maven: Maven | None = None

    @property
    def java(self) -> Java:
        if self._java is None:
            self._java = find_java(self._java_home)
        return self._java

    @property
    def maven(self) -> Maven:
        if self._maven is None:
            self._maven = Maven(find_maven(), self._maven_repo)
        return self._maven
