"""The Docker route: docker-compose.yml, Dockerfile and .dockerignore, checked by construction.

No Docker engine is needed: the files are parsed and their promises asserted (pinned images,
health checks, loopback-only ports, named volumes, start order, in-network addresses, a
hash-checked non-root image). When the ``docker compose`` client is installed it also
validates the file against the Compose schema, which works without an engine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"kafka", "opensearch", "dashboards", "setup", "worker", "generator"}
# Services that serve something and must say when they are ready.
SERVERS = {"kafka", "opensearch", "dashboards", "worker"}
# Services that run botwatch itself, inside the compose network.
BOTWATCH_SERVICES = {"setup", "worker", "generator"}
IN_NETWORK_ENV = {
    "BOTWATCH_KAFKA_BOOTSTRAP": "kafka:29092",
    "BOTWATCH_OPENSEARCH_URL": "http://opensearch:9200",
}
LOOPBACK = "127.0.0.1"
VERSION_TAG = re.compile(r"\d+\.\d+")


# --- parsing -------------------------------------------------------------------------------


def image_tag(image: str) -> str | None:
    """The tag of an image reference, None when it has none (a registry port is no tag)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    return last.rsplit(":", 1)[1]


def is_pinned(image: str) -> bool:
    """True for an exact version tag such as ``apache/kafka:4.1.1``.

    ``latest``, no tag at all and bare major tags (``python:3``) are not pinned.
    """
    tag = image_tag(image)
    return tag is not None and tag != "latest" and VERSION_TAG.search(tag) is not None


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """(host ip, host port, container port) for every entry of a service's ``ports``."""
    result: list[tuple[str | None, str, str]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            host_ip = entry.get("host_ip")
            result.append((host_ip, str(entry.get("published", "")), str(entry["target"])))
            continue
        spec = str(entry).split("/", 1)[0]  # drop "/tcp"
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            result.append((parts[0].strip("[]") or None, parts[1], parts[2]))
        elif len(parts) == 2:
            result.append((None, parts[0], parts[1]))
        else:
            result.append((None, "", parts[0]))
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict of strings, whether written as a map or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """{volume name: mount path} for the named (not bind-mounted) volumes of a service."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type", "volume") == "volume" and entry.get("source"):
                mounts[str(entry["source"])] = str(entry["target"])
            continue
        source, _, rest = str(entry).partition(":")
        if rest and not source.startswith((".", "/", "~", "$")):
            mounts[source] = rest.split(":", 1)[0]
    return mounts


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """{service: condition}; the short list form means ``service_started``."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, with continuation lines joined."""
    joined = re.sub(r"\\\s*\n", " ", text)
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, args = stripped.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


# --- the parsing itself, so a check that can never fail is caught ------------------------


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("apache/kafka:4.1.1", True),
        ("opensearchproject/opensearch:2.19.3", True),
        ("python:3.11.11-slim-bookworm", True),
        ("localhost:5000/botwatch:0.1.0", True),
        ("apache/kafka", False),
        ("apache/kafka:latest", False),
        ("python:3", False),
        ("python:slim", False),
        ("localhost:5000/botwatch", False),
    ],
)
def test_is_pinned_tells_exact_tags_from_floating_ones(image: str, pinned: bool) -> None:
    assert is_pinned(image) is pinned


def test_port_parsing_sees_the_bind_address() -> None:
    service = {
        "ports": [
            "127.0.0.1:9092:9092",
            "9200:9200",
            "5601",
            {"target": 6066, "published": 6066, "host_ip": "0.0.0.0"},
        ]
    }
    assert published_ports(service) == [
        ("127.0.0.1", "9092", "9092"),
        (None, "9200", "9200"),
        (None, "", "5601"),
        ("0.0.0.0", "6066", "6066"),
    ]


def test_named_volume_parsing_ignores_bind_mounts() -> None:
    service = {"volumes": ["data:/var/lib/x", "./conf:/etc/x:ro", "/abs:/y"]}
    assert named_volumes(service) == {"data": "/var/lib/x"}


# --- docker-compose.yml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose.get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services"
    return services


def test_all_six_services_exist(services: dict[str, dict[str, Any]]) -> None:
    missing = SERVICES - set(services)
    assert not missing, f"missing services: {sorted(missing)}"


def test_every_image_is_pinned_or_built_here(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert context in {".", "./"}, f"{name}: builds from {context!r}, not the repo root"
            assert dockerfile in {None, "Dockerfile"}, f"{name}: builds from {dockerfile!r}"
            if image is not None:
                assert is_pinned(image), f"{name}: built image {image!r} needs a version tag"
            continue
        assert image, f"{name}: neither image nor build"
        assert is_pinned(image), f"{name}: image {image!r} is not pinned to an exact version"


def test_upstream_images_are_the_chosen_ones(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    opensearch = services["opensearch"]["image"]
    dashboards = services["dashboards"]["image"]
    assert opensearch.startswith("opensearchproject/opensearch:2.19.")
    assert dashboards.startswith("opensearchproject/opensearch-dashboards:2.19.")
    assert image_tag(opensearch) == image_tag(dashboards), "Dashboards must match OpenSearch"


def test_botwatch_services_share_the_local_image(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name].get("image") for name in BOTWATCH_SERVICES}
    assert len(images) == 1, f"botwatch services use different images: {images}"
    for name in BOTWATCH_SERVICES:
        assert services[name].get("build") is not None, f"{name}: not built from the Dockerfile"


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    needs_health = set(SERVERS)
    for service in services.values():
        needs_health |= {
            dep for dep, cond in depends_on(service).items() if cond == "service_healthy"
        }
    for name in sorted(needs_health):
        check = services[name].get("healthcheck")
        assert isinstance(check, dict), f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        test = check.get("test")
        assert test, f"{name}: healthcheck has no test"
        if isinstance(test, list):
            assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test {test[0]!r}"
            assert len(test) > 1, f"{name}: empty healthcheck command"


def test_healthchecks_ask_the_service_itself(services: dict[str, dict[str, Any]]) -> None:
    def text(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return test if isinstance(test, str) else " ".join(str(word) for word in test)

    assert "kafka-broker-api-versions.sh" in text("kafka") or "kafka-topics" in text("kafka")
    assert "_cluster/health" in text("opensearch")
    assert "wait_for_status=yellow" in text("opensearch")
    assert "/api/status" in text("dashboards")
    worker = text("worker")
    assert "http://localhost:6066/health" in worker
    assert "urllib" in worker, "the slim image has no curl: the worker check must use Python"


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for host_ip, host_port, target in published_ports(service):
            assert host_ip == LOOPBACK, (
                f"{name}: port {target} is published on {host_ip or 'all interfaces'}"
            )
            assert host_port, f"{name}: port {target} is published on a random host port"


def test_expected_ports_are_published(services: dict[str, dict[str, Any]]) -> None:
    expected = {"kafka": "9092", "opensearch": "9200", "dashboards": "5601", "worker": "6066"}
    for name, port in expected.items():
        ports = {(host, target) for _, host, target in published_ports(services[name])}
        assert (port, port) in ports, f"{name}: {port} is not published as {port}"
    for name in ("setup", "generator"):
        assert not services[name].get("ports"), f"{name} needs no published port"


def test_state_lives_in_declared_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    expected_paths = {
        "kafka": "/var/lib/kafka/data",
        "opensearch": "/usr/share/opensearch/data",
        "worker": "/var/lib/botwatch",
    }
    for name, path in expected_paths.items():
        mounts = named_volumes(services[name])
        assert path in mounts.values(), f"{name}: no named volume on {path}"
        for volume in mounts:
            assert volume in declared, f"{name}: volume {volume!r} not declared at the top level"
    kafka_env = environment(services["kafka"])
    assert kafka_env.get("KAFKA_LOG_DIRS") == expected_paths["kafka"]


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert depends_on(services["setup"]) == {
        "kafka": "service_healthy",
        "opensearch": "service_healthy",
    }
    worker = depends_on(services["worker"])
    assert worker.get("setup") == "service_completed_successfully"
    assert depends_on(services["dashboards"]).get("opensearch") == "service_healthy"
    assert depends_on(services["generator"]).get("worker") == "service_healthy"
    assert str(services["setup"].get("restart")) == "no", "setup runs once"


def test_commands(services: dict[str, dict[str, Any]]) -> None:
    assert command_words(services["setup"]) == ["setup"]
    assert command_words(services["worker"]) == ["worker"]
    generate = command_words(services["generator"])
    assert generate[0] == "generate"
    for flag in ("--bots", "--rate", "--error-rate", "--malformed", "--duration"):
        assert flag in generate, f"generator: {flag} missing"
    assert generate[generate.index("--duration") + 1] == "0", "the generator runs until stopped"


def test_botwatch_services_use_in_network_addresses(services: dict[str, dict[str, Any]]) -> None:
    for name in sorted(BOTWATCH_SERVICES):
        env = environment(services[name])
        for key, value in IN_NETWORK_ENV.items():
            assert env.get(key) == value, f"{name}: {key}={env.get(key)!r}, expected {value!r}"
    worker = environment(services["worker"])
    assert worker.get("BOTWATCH_WEB_HOST") == "0.0.0.0"
    assert worker.get("BOTWATCH_STATE_DIR") in named_volumes(services["worker"]).values()


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env.get("CLUSTER_ID"), "a fixed cluster id keeps the data volume usable"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "//kafka:29092" in advertised, "other containers need kafka:29092"
    assert "//127.0.0.1:9092" in advertised or "//localhost:9092" in advertised
    listeners = env["KAFKA_LISTENERS"]
    assert ":29092" in listeners
    assert ":9092" in listeners
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    factors = {k: v for k, v in env.items() if k.endswith("REPLICATION_FACTOR")}
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert key in factors, f"{key} missing"
    assert set(factors.values()) == {"1"}, f"replication factors: {factors}"
    isr = {k: v for k, v in env.items() if k.endswith("MIN_ISR")}
    assert set(isr.values()) <= {"1"}, f"min ISR above 1 on a single node: {isr}"


def test_opensearch_is_a_plain_single_node(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["opensearch"])
    assert env.get("discovery.type") == "single-node"
    assert env.get("DISABLE_SECURITY_PLUGIN") == "true"
    assert env.get("DISABLE_INSTALL_DEMO_CONFIG") == "true"
    assert "-Xmx" in env.get("OPENSEARCH_JAVA_OPTS", "")
    ulimits = services["opensearch"].get("ulimits") or {}
    assert "memlock" in ulimits
    assert "nofile" in ulimits
    dashboards = environment(services["dashboards"])
    assert dashboards.get("DISABLE_SECURITY_DASHBOARDS_PLUGIN") == "true"
    assert "http://opensearch:9200" in dashboards.get("OPENSEARCH_HOSTS", "")


def test_compose_file_validates_with_docker_compose() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed; the parse checks above still ran")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("docker is installed without the compose plugin (`docker compose`)")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"docker compose config rejected the file:\n{result.stderr}"


# --- Dockerfile and .dockerignore ------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_dockerfile_base_image_is_pinned(dockerfile: list[tuple[str, str]]) -> None:
    bases = [args.split()[0] for keyword, args in dockerfile if keyword == "FROM"]
    assert bases, "no FROM line"
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), f"base image {base!r}"


def test_dockerfile_installs_exactly_the_lock(dockerfile: list[tuple[str, str]]) -> None:
    runs = [args for keyword, args in dockerfile if keyword == "RUN"]
    lock = [run for run in runs if "requirements/lock.txt" in run]
    assert lock, "requirements/lock.txt is never installed"
    assert all("--require-hashes" in run for run in lock), "the lock must be hash-checked"
    project = [run for run in runs if re.search(r"pip install --no-deps \.(\s|$)", run)]
    assert project, "the project must be installed with `pip install --no-deps .`"
    assert runs.index(lock[0]) < runs.index(project[0]), "dependencies before the project"
    assert (ROOT / "requirements" / "lock.txt").is_file()
    assert "--hash=sha256:" in (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8")


def test_dockerfile_runs_botwatch_as_non_root(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users, "no USER line: the image would run as root"
    final_user = users[-1].split(":", 1)[0]
    assert final_user not in {"root", "0"}, f"final USER is {users[-1]!r}"
    entrypoints = [args for keyword, args in dockerfile if keyword == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    assert entrypoints[-1] in {'["botwatch"]', "botwatch"}, entrypoints[-1]


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    for required in (".venv", ".git", "tests", "bench/results"):
        assert required in entries, f".dockerignore does not exclude {required}"
    assert entries & {"__pycache__", "**/__pycache__"}, ".dockerignore keeps __pycache__"
    assert "requirements" not in entries, "the image needs requirements/lock.txt"
