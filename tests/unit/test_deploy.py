"""Static checks of the deployment files (deploy/, .dockerignore, .env.example).

No container engine runs in CI, so these read the files: the compose file against the
vendored Compose Specification schema, the Dockerfile's stages, users, ports, health checks
and COPY sources, and the secrets' handling. No network is used.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from common.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
SCHEMA = DEPLOY / "schema" / "compose-spec.json"
HEALTHCHECK = DEPLOY / "healthcheck.py"

# Secrets that may be empty: an empty token switches that feature off.
# Optional: e-mail goes out without a mail server account when the clinic's relay needs none.
OPTIONAL_SECRETS = {
    "RASA_API_TOKEN",
    "BOOKING_WEBHOOK_TOKEN",
    "CHAT_INTEGRATION_TOKEN",
    "SMTP_PASSWORD",
    "METRICS_TOKEN",
}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET")
# ${VAR}, ${VAR:-default}, ${VAR:?error}; $${...} is a literal dollar, not interpolated.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")


# ---- Dockerfile ------------------------------------------------------------------------


@dataclass
class Stage:
    """One FROM ... AS name block: its base and its instructions as (keyword, arguments)."""

    base: str
    name: str
    instructions: list[tuple] = field(default_factory=list)


def dockerfile_stages(text: str) -> dict[str, Stage]:
    """The Dockerfile's stages by name, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(base=words[0], name=name)
        elif current is not None:
            current.instructions.append((keyword, args))
    return stages


STAGES = dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))
TARGETS = {
    "rasa": ("servers.chat", 5005, "/webhooks/rest/"),
    "actions": ("servers.actions", 5055, "/health"),
    "console": ("staff.console", 8081, "/health"),
}
# Published to the host (on loopback by default), behind the clinic's HTTPS reverse proxy.
PUBLISHED = {"rasa": "RASA_PUBLISH_ADDRESS", "console": "STAFF_PUBLISH_ADDRESS"}


def chain(name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, oldest first."""
    stages = []
    while name in STAGES:
        stages.insert(0, STAGES[name])
        name = STAGES[name].base
    return stages


def instructions(target: str, keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction that applies to target, in build order."""
    return [args for stage in chain(target) for kw, args in stage.instructions if kw == keyword]


def copy_sources() -> list[str]:
    """The build-context paths every COPY/ADD reads (not --from=stage copies)."""
    sources = []
    for stage in STAGES.values():
        for keyword, args in stage.instructions:
            words = shlex.split(args)
            if keyword in ("COPY", "ADD") and not any(w.startswith("--from=") for w in words):
                sources += [w.rstrip("/") for w in words if not w.startswith("--")][:-1]
    return sources


def external_bases() -> list[str]:
    return [stage.base for stage in STAGES.values() if stage.base not in STAGES]


def test_base_is_debian_bookworm_slim_with_debians_own_python_311() -> None:
    """Debian's python3.11, so Debian's security updates reach the interpreter (issue 22)."""
    assert external_bases() == ["debian:bookworm-slim"]
    installs = " ".join(instructions("rasa", "RUN"))
    assert "python3.11 python3.11-venv" in installs


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_images_carry_no_compiler(target: str) -> None:
    """Only the build stage has compilers and headers; the images get its venv, not its tools."""
    assert "builder" not in [stage.name for stage in chain(target)]
    runs = " ".join(instructions(target, "RUN"))
    assert not re.search(r"build-essential|-dev\b|\bgcc\b", runs), runs
    assert "--from=builder /opt/venv /opt/venv" in " ".join(instructions(target, "COPY"))


def test_console_has_git_for_the_history_and_pg_tools_for_backups() -> None:
    installs = " ".join(instructions("console", "RUN"))
    assert "git" in installs.split() and "postgresql-client-15" in installs.split()
    assert instructions("console", "USER")[-1] == "10001:10001"  # back to the app user after apt-get


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_runs_as_a_non_root_user(target: str) -> None:
    users = instructions(target, "USER")
    assert users, f"{target} runs as root: no USER"
    assert users[-1].split(":")[0].isdigit(), "numeric, so Kubernetes can check runAsNonRoot"
    assert users[-1].split(":")[0] != "0", users[-1]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_exposes_its_port_checks_health_and_starts_its_server(target: str) -> None:
    module, port, health_path = TARGETS[target]
    assert str(port) in " ".join(instructions(target, "EXPOSE")).split()
    health = instructions(target, "HEALTHCHECK")
    assert health and health_path in health[-1] and "deploy/healthcheck.py" in health[-1]
    assert json.loads(health[-1].split("CMD", 1)[1])[:2] == ["python", "deploy/healthcheck.py"]
    assert json.loads(instructions(target, "CMD")[-1]) == ["python", "-m", module]


def test_rasa_image_carries_the_model_where_the_server_looks() -> None:
    copies = [shlex.split(args) for args in instructions("rasa", "COPY")]
    assert any(words[0] == "--from=train" and words[-1] == "models/scar-faq.tar.gz" for words in copies)
    assert any("clinic-train" in args for args in instructions("train", "RUN"))


def test_install_order_is_the_readmes() -> None:
    runs = " ".join(instructions("builder", "RUN") + instructions("train", "RUN"))
    steps = [
        "-r requirements.txt -c constraints.txt",
        "--no-deps -r requirements-nodeps.txt",
        "spacy_model/build.py",
        "clinic-train",
    ]
    positions = [runs.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(steps, positions))


def test_no_secret_is_baked_into_an_image() -> None:
    for stage in STAGES.values():
        for keyword, args in stage.instructions:
            if keyword in ("ENV", "ARG"):
                names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or args.split()[:1]
                assert not [n for n in names if SECRET_NAME.search(n) or n == "DATABASE_URL"], args


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns leave path (or a folder above it) out of the context."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        globs = {glob, glob[len("**/") :]} if glob.startswith("**/") else {glob}
        hit = any(
            fnmatch.fnmatch(prefix, g) or (g != glob and fnmatch.fnmatch(Path(prefix).name, g))
            for prefix in prefixes
            for g in globs
        )
        if hit:
            ignored = not negate
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("source", sorted(set(copy_sources())))
def test_copy_source_exists_and_is_in_the_build_context(source: str) -> None:
    assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    assert not dockerignored(source, dockerignore_patterns()), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = dockerignore_patterns()
    for path in [
        ".venv",
        "models/scar-faq.tar.gz",
        "var/clinic.db",
        "reports/benchmark.md",
        ".env",
        "web/node_modules/socket.io-client",
        ".git/HEAD",
        "actions/__pycache__/x.pyc",
    ]:
        assert dockerignored(path, patterns), f"{path} would be sent to the build"
    assert not dockerignored("actions/faq.py", patterns)


# ---- Compose ---------------------------------------------------------------------------

COMPOSE_TEXT = COMPOSE.read_text(encoding="utf-8")
SERVICES: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_TEXT)["services"]


def env_example() -> dict[str, str]:
    """.env.example as KEY -> value; fails on a malformed or repeated line."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"malformed line: {line!r}"
        assert key not in values, f"{key} twice"
        values[key] = value
    return values


def strings(node: Any) -> Iterator[str]:
    """Every key and string value in a parsed YAML tree (what compose interpolates)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def interpolations() -> Iterator[re.Match]:
    """The ${...} references in the compose file's values (not in its comments)."""
    for text in strings(yaml.safe_load(COMPOSE_TEXT)):
        yield from INTERPOLATION.finditer(text)


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(yaml.safe_load(COMPOSE_TEXT))
    ]
    assert not errors, "\n".join(errors)


def test_only_the_rasa_server_and_the_console_are_published_on_loopback() -> None:
    assert {name for name, service in SERVICES.items() if service.get("ports")} == set(PUBLISHED)
    assert set(SERVICES) >= {"postgres", "redis", "actions", "rasa", "console"}
    for name, variable in PUBLISHED.items():
        [port] = SERVICES[name]["ports"]
        assert port.startswith(f"${{{variable}:-127.0.0.1}}:"), port


def test_postgres_and_redis_are_checked_and_keep_data_in_named_volumes() -> None:
    assert SERVICES["postgres"]["image"] == "postgres:15"
    assert SERVICES["redis"]["image"] == "redis:7"
    declared = set(yaml.safe_load(COMPOSE_TEXT).get("volumes") or {})
    for name in ("postgres", "redis"):
        assert SERVICES[name]["healthcheck"]["test"], f"{name} has no healthcheck"
        volumes = [v.split(":")[0] for v in SERVICES[name]["volumes"]]
        assert volumes and set(volumes) <= declared, f"{name}: {volumes} not named volumes"


def test_servers_start_after_what_they_need_is_healthy() -> None:
    # The action server counts live chat requests per address in Redis (actions/live_chat.py).
    needs = {
        "actions": {"postgres", "redis", "console"},  # the console fills the content volume first
        "rasa": {"postgres", "redis", "actions", "console"},
        "console": {"postgres"},
    }
    for name, wanted in needs.items():
        depends = SERVICES[name]["depends_on"]
        assert set(depends) == wanted
        assert all(d["condition"] == "service_healthy" for d in depends.values())


def test_servers_are_built_from_the_dockerfile_targets() -> None:
    for name in TARGETS:
        build = SERVICES[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["target"] == name and name in STAGES


def test_console_runs_behind_https_with_its_own_key_on_the_same_database() -> None:
    console, rasa = SERVICES["console"]["environment"], SERVICES["rasa"]["environment"]
    assert console["CLINIC_PROFILE"] == "production" and str(console["STAFF_HTTPS"]) == "1"
    assert console["STAFF_SECRET_KEY"].startswith("${STAFF_SECRET_KEY:?")
    assert console["DATABASE_URL"] == rasa["DATABASE_URL"]


def test_rasa_runs_the_production_profile_and_reaches_the_action_server() -> None:
    rasa, actions = SERVICES["rasa"]["environment"], SERVICES["actions"]["environment"]
    assert rasa["CLINIC_PROFILE"] == "production" and rasa["RASA_INTERFACE"] == "0.0.0.0"
    assert rasa["REDIS_HOST"] == "redis" and rasa["DATABASE_URL"].startswith("postgresql://")
    assert rasa["ACTION_SERVER_URL"] == f"http://actions:{actions['ACTION_SERVER_PORT']}/webhook"
    assert actions["ACTION_SERVER_HOST"] == "0.0.0.0"
    assert rasa["ACTION_SERVER_TOKEN"] == actions["ACTION_SERVER_TOKEN"]


def test_required_secrets_fail_loudly_when_missing() -> None:
    secrets = [m for m in interpolations() if SECRET_NAME.search(m.group(1))]
    assert secrets
    for match in secrets:
        if match.group(1) not in OPTIONAL_SECRETS:
            assert (match.group(2) or "").startswith(":?"), f"{match.group(0)}: use ${{VAR:?message}}"


def test_every_variable_is_documented_in_env_example() -> None:
    documented = set(env_example())
    used: set[str] = {m.group(1) for m in interpolations()}
    for service in SERVICES.values():
        used |= set(service.get("environment") or {})
    assert not used - documented, f"missing from .env.example: {sorted(used - documented)}"


def test_env_example_holds_placeholders_only() -> None:
    for key, value in env_example().items():
        if SECRET_NAME.search(key) or key == "DATABASE_URL":
            assert not value or "change-me" in value, f"{key}: use an empty or change-me placeholder"


# ---- deploy/healthcheck.py -------------------------------------------------------------


class _Status(BaseHTTPRequestHandler):
    """Answers GET /<status> with that HTTP status."""

    def do_GET(self) -> None:
        self.send_response(int(self.path.strip("/")))
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def status_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_healthcheck(url: str, **env: str) -> int:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), url], timeout=30, env={**os.environ, **env}
    ).returncode


def test_healthcheck_passes_on_200(status_server: str) -> None:
    assert run_healthcheck(f"{status_server}/200") == 0


def test_healthcheck_expands_the_port_variable_itself(status_server: str) -> None:
    port = status_server.rsplit(":", 1)[1]
    assert run_healthcheck("http://127.0.0.1:${HEALTH_TEST_PORT}/200", HEALTH_TEST_PORT=port) == 0


@pytest.mark.parametrize("path", ["/503", "/404"])
def test_healthcheck_fails_on_an_error_status(status_server: str, path: str) -> None:
    assert run_healthcheck(status_server + path) == 1


def test_healthcheck_fails_when_nothing_listens() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    port = server.server_address[1]
    server.server_close()
    assert run_healthcheck(f"http://127.0.0.1:{port}/") == 1


def test_images_ship_staff_commands_but_no_developer_tooling() -> None:
    """Staff run clinic-bookings in the containers; the benchmark and load test stay out."""
    sources = copy_sources()
    assert "staff" in sources and "common" in sources
    # The release's conversation tests and held-out questions are content (the console seeds
    # its workspace with them); no other test, and no developer tool, is in an image.
    tooling = [s for s in sources if s.startswith(("devtools", "tests"))]
    assert tooling == ["tests/stories", "tests/heldout"], sources
    assert dockerignored("devtools/loadtest.py", dockerignore_patterns())
    installs = " ".join(instructions("rasa", "RUN"))
    assert "pip install --quiet --no-deps --no-build-isolation --ignore-requires-python -e ." in installs
    removed = " ".join(instructions("builder", "RUN"))
    assert "pip uninstall --quiet --yes playwright ruff pytest" in removed  # pinned for developers only


def test_console_image_holds_the_whole_release_its_workspace_is_seeded_from() -> None:
    """Every part the console's content workspace is made of is copied into the console image."""
    from staff.service.releases import RELEASE_PARTS

    copies = [shlex.split(args) for args in instructions("console", "COPY")]
    copied = {word.rstrip("/") for words in copies for word in words[:-1] if not word.startswith("--")}
    assert set(RELEASE_PARTS) <= copied, set(RELEASE_PARTS) - copied


def test_content_volume_is_the_consoles_workspace_and_every_servers_clinic_settings() -> None:
    """Staff edits live on a volume (issue 22): the console writes it, the servers read clinic.yml there."""
    console = SERVICES["console"]
    assert console["environment"]["STAFF_PROJECT_ROOT"] == "/var/lib/scar-faq/content"
    assert console["environment"]["CONTENT_RELEASE_DIR"] == "/srv/scar-faq"  # the image's release
    assert "staff-content:/var/lib/scar-faq/content" in console["volumes"]
    for name in ("actions", "rasa"):
        assert "staff-content:/var/lib/scar-faq/content:ro" in SERVICES[name]["volumes"]
    for name in ("actions", "rasa", "console"):
        assert SERVICES[name]["environment"]["CLINIC_SETTINGS"] == "/var/lib/scar-faq/content/clinic.yml"
    assert {"staff-content", "model-store"} <= set(yaml.safe_load(COMPOSE_TEXT)["volumes"])
