"""Fetching Kafka and OpenSearch from Maven Central with Maven, into botwatch's own cache."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from botwatch.stack.errors import StackError

# Maven's default dependency plugin on older Maven releases lacks `copy` of a bare artifact.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_FETCH_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>botwatch.stack</groupId>
  <artifactId>fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""

_DEPENDENCY = (
    "    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
    "<version>{version}</version></dependency>"
)


@dataclass(frozen=True)
class Coordinates:
    group: str
    artifact: str
    version: str
    packaging: str = "jar"

    def __str__(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.packaging}"


class ArtifactNotFound(StackError):
    """Maven Central does not serve this artifact (as opposed to a network failure)."""


@dataclass(frozen=True)
class Maven:
    """Runs ``mvn`` in batch mode against a local repository inside BOTWATCH_HOME."""

    executable: Path
    local_repo: Path

    def _run(self, args: list[str], cwd: Path, what: str) -> None:
        argv = [
            str(self.executable),
            "-B",
            "-q",
            "-ntp",
            f"-Dmaven.repo.local={self.local_repo}",
            *args,
        ]
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return
        output = (proc.stdout + proc.stderr).strip()
        last = "\n".join(output.splitlines()[-15:])
        if "Could not find artifact" in output or "was not found in" in output:
            raise ArtifactNotFound(
                f"Maven Central does not serve {what}.",
                "choose a version that Maven Central serves (see the settings in README.md).",
                last,
            )
        raise StackError(
            f"Downloading {what} with Maven failed (exit code {proc.returncode}).",
            "check that this machine reaches Maven Central (or the mirror in ~/.m2/settings.xml) "
            "and run `botwatch stack up` again; finished downloads are kept.",
            last,
        )

    def copy_runtime_classpath(self, deps: list[Coordinates], dest: Path) -> None:
        """Resolve ``deps`` with their runtime dependencies and copy every jar into ``dest``."""
        body = "\n".join(
            _DEPENDENCY.format(group=d.group, artifact=d.artifact, version=d.version) for d in deps
        )
        with tempfile.TemporaryDirectory(prefix="botwatch-mvn-") as tmp:
            (Path(tmp) / "pom.xml").write_text(_FETCH_POM.format(dependencies=body))
            self._run(
                [
                    f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={dest}",
                ],
                cwd=Path(tmp),
                what=", ".join(map(str, deps)),
            )

    def copy_artifact(self, coords: Coordinates, dest: Path) -> Path:
        """Fetch one artifact (no dependencies) into ``dest`` and return its path."""
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="botwatch-mvn-") as tmp:
            self._run(
                [
                    f"{_DEPENDENCY_PLUGIN}:copy",
                    f"-Dartifact={coords}",
                    f"-DoutputDirectory={dest}",
                ],
                cwd=Path(tmp),
                what=str(coords),
            )
        return dest / f"{coords.artifact}-{coords.version}.{coords.packaging}"
