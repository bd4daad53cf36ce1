"""Fetch the devstack's Java services through Maven into a cache outside the repository.

Why Maven: this machine reaches package registries only, and Maven's default configuration already
knows where Kafka's jars and Apicurio Registry's distribution live, so no download host is named in
this code. Each distribution is staged in a temporary folder and renamed into place with a
``.complete`` marker, so an interrupted fetch is redone rather than half-used, and a finished one is
never fetched again.

Cache layout (default ``~/.cache/connector-devstack``, override with ``CONNECTOR_CACHE_DIR``)::

    kafka-4.1.1/libs/*.jar          the broker, a log4j2 binding and their runtime dependencies
    apicurio-registry-3.3.3/        the registry's Quarkus fast-jar layout (quarkus-run.jar, lib/)
    state/                          the default state dir (data, logs, pid files)
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connector.devstack.errors import DevstackError

LOG = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
SCALA_BINARY_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.16"
APICURIO_VERSION = "3.3.3"

# Kafka 4.x brokers need Java 17; Apicurio Registry 3.3 is compiled for Java 21 (class file 65).
KAFKA_MIN_JAVA = 17
REGISTRY_MIN_JAVA = 21

CACHE_DIR_ENV = "CONNECTOR_CACHE_DIR"
_COMPLETE = ".complete"
_MVN_TAIL_LINES = 30

_KAFKA_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Throwaway project: only lists what `dependency:copy-dependencies` must copy. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>connector.devstack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version>
    </dependency>
  </dependencies>
</project>
"""


@dataclass(frozen=True)
class Distributions:
    """Where the fetched services live inside the cache."""

    kafka_home: Path
    registry_home: Path


@dataclass(frozen=True)
class JavaRuntime:
    """A ``java`` executable and its major version."""

    path: Path
    major: int


def default_cache_dir() -> Path:
    """The cache root: ``$CONNECTOR_CACHE_DIR`` or ``~/.cache/connector-devstack``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "connector-devstack"


def kafka_home(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def registry_home(cache_dir: Path) -> Path:
    return cache_dir / f"apicurio-registry-{APICURIO_VERSION}"


def is_fetched(home: Path) -> bool:
    return (home / _COMPLETE).is_file()


def fetch_all(cache_dir: Path) -> Distributions:
    """Fetch Kafka and Apicurio Registry unless already cached; returns their homes."""
    return Distributions(kafka_home=fetch_kafka(cache_dir), registry_home=fetch_registry(cache_dir))


def fetch_kafka(cache_dir: Path) -> Path:
    """Copy the Kafka broker jars (with a log4j2 binding) into ``<cache>/kafka-<version>/libs``."""
    home = kafka_home(cache_dir)
    if is_fetched(home):
        return home
    with _fetch_lock(cache_dir):
        if is_fetched(home):  # another process finished it while we waited for the lock
            return home
        mvn = require_mvn()
        started = time.monotonic()
        LOG.info("fetching Apache Kafka %s jars through Maven (first run only)", KAFKA_VERSION)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-kafka-") as tmp:
            work = Path(tmp)
            pom = work / "pom.xml"
            pom.write_text(
                _KAFKA_POM.format(
                    kafka=KAFKA_VERSION,
                    scala=SCALA_BINARY_VERSION,
                    log4j=LOG4J_VERSION,
                    slf4j=SLF4J_VERSION,
                )
            )
            staging = work / "home"
            _run_mvn(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging / 'libs'}",
                    "-DincludeScope=runtime",
                ],
                cwd=work,
                what=f"Kafka {KAFKA_VERSION}",
            )
            if not any((staging / "libs").glob(f"kafka_{SCALA_BINARY_VERSION}-*.jar")):
                raise DevstackError(f"Maven finished but no Kafka jar landed in {staging / 'libs'}")
            _install(staging, home)
        LOG.info("fetched Kafka into %s in %.1f s", home, time.monotonic() - started)
        return home


def fetch_registry(cache_dir: Path) -> Path:
    """Download Apicurio Registry's ``-all.tar.gz`` through Maven and unpack it into the cache."""
    home = registry_home(cache_dir)
    if is_fetched(home):
        return home
    with _fetch_lock(cache_dir):
        if is_fetched(home):
            return home
        mvn = require_mvn()
        started = time.monotonic()
        LOG.info(
            "fetching Apicurio Registry %s through Maven (about 150 MB, first run only)",
            APICURIO_VERSION,
        )
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-registry-") as tmp:
            work = Path(tmp)
            # No pom needed: `dependency:copy` resolves a single artifact outside any project.
            _run_mvn(
                [
                    mvn,
                    "-B",
                    "-q",
                    "dependency:copy",
                    f"-Dartifact=io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all",
                    f"-DoutputDirectory={work}",
                ],
                cwd=work,
                what=f"Apicurio Registry {APICURIO_VERSION}",
            )
            tarball = work / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
            if not tarball.is_file():
                raise DevstackError(f"Maven finished but {tarball.name} is missing in {work}")
            staging = work / "home"
            # Python's extractor, not Maven's `dependency:unpack`: the plugin version Maven 3.8
            # picks by default mishandles the archive's PAX headers.
            with tarfile.open(tarball) as archive:
                archive.extractall(staging, filter="data")
            tarball.unlink()
            if not (staging / "quarkus-run.jar").is_file():
                raise DevstackError(f"{tarball.name} has no quarkus-run.jar at its top level")
            _install(staging, home)
        LOG.info("fetched Apicurio Registry into %s in %.1f s", home, time.monotonic() - started)
        return home


def require_mvn() -> str:
    """The ``mvn`` executable, or a DevstackError that says how to get it."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevstackError(
            "`mvn` (Apache Maven) is not on PATH; the devstack fetches Kafka and Apicurio "
            "Registry through it. Install it (for example `apt-get install -y maven`) and retry."
        )
    return mvn


def find_java(min_major: int, *, purpose: str) -> JavaRuntime:
    """The first ``java`` with major version >= ``min_major``.

    Looks at ``$JAVA_HOME``, then ``java`` on PATH, then ``/usr/lib/jvm/*`` (newest first), so an
    explicit choice wins and a second JDK installed beside the default one is still found.
    """
    seen: list[JavaRuntime] = []
    for candidate in _java_candidates():
        major = java_major_version(str(candidate))
        if major is None:
            continue
        runtime = JavaRuntime(path=candidate, major=major)
        if major >= min_major:
            return runtime
        seen.append(runtime)
    found = ", ".join(f"{rt.path} ({rt.major})" for rt in seen) or "no java at all"
    raise DevstackError(
        f"{purpose} needs Java {min_major} or newer; found: {found}. Install a JDK or JRE "
        f">= {min_major} (for example a Temurin or OpenJDK {min_major}+ package) or point "
        "JAVA_HOME at one."
    )


@functools.cache
def java_major_version(java: str) -> int | None:
    """Parse ``java -version`` ("17.0.15", "25", "1.8.0_402" -> 17, 25, 8); None if unusable."""
    try:
        proc = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if proc.returncode != 0 or match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:  # the pre-Java-9 "1.8" scheme
        major = int(match.group(2))
    return major


def _java_candidates() -> Iterator[Path]:
    paths: list[Path] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        paths.append(Path(java_home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        paths.append(Path(on_path))
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        installed = [
            p / "bin" / "java" for p in jvm_root.iterdir() if (p / "bin" / "java").exists()
        ]
        installed.sort(key=lambda p: java_major_version(str(p)) or 0, reverse=True)
        paths.extend(installed)
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            continue
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            yield path


def _run_mvn(argv: Sequence[str], *, cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise DevstackError(f"could not run Maven to fetch {what}: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()[-_MVN_TAIL_LINES:]
        raise DevstackError(
            f"Maven failed (exit {proc.returncode}) fetching {what}: {' '.join(argv)}\n"
            + "\n".join(output)
        )


def _install(staging: Path, home: Path) -> None:
    (staging / _COMPLETE).write_text(f"fetched {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    if home.exists():  # leftovers of an interrupted fetch (no .complete marker)
        shutil.rmtree(home)
    staging.rename(home)


@contextmanager
def _fetch_lock(cache_dir: Path) -> Iterator[None]:
    """Serialise fetches so two test sessions starting together don't download twice."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".fetch.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
