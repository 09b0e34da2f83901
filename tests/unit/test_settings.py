"""Deployment settings: unsafe or half-configured servers are refused with the fix spelled out."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from common.settings import Settings, SettingsError, environment, local_conversation_secret, read_dotenv
from servers.chat import rasa_arguments

SECRET = "s3cret-value-long-enough-0123456789abcdef"
PRODUCTION = {
    "CLINIC_PROFILE": "production",
    "DATABASE_URL": "postgresql://u:p@db:5432/clinic",
    "REDIS_HOST": "redis",
    "ACTION_SERVER_TOKEN": SECRET,
    "CONVERSATION_SECRET": SECRET,
    "MODEL_SERVER_TOKEN": SECRET,
}


def refusal(env: dict) -> str:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(env)
    return str(error.value)


def test_defaults_are_local_sqlite_loopback_and_no_api() -> None:
    settings = Settings.from_env({})
    assert settings.endpoints_file == PROJECT_ROOT / "endpoints.yml"
    assert settings.database_url.startswith("sqlite:///")
    assert (settings.rasa_interface, settings.action_server_host) == ("127.0.0.1", "127.0.0.1")
    assert "--enable-api" not in rasa_arguments(settings)


def test_production_profile_uses_postgres_and_redis_endpoints() -> None:
    settings = Settings.from_env(PRODUCTION)
    assert settings.endpoints_file.name == "endpoints.production.yml"
    assert settings.endpoint_variables()["REDIS_HOST"] == "redis"
    assert settings.endpoint_variables()["REDIS_PORT"] == "6379"


def test_production_servers_and_console_need_the_model_server_token() -> None:
    env = {**PRODUCTION, "MODEL_SERVER_TOKEN": ""}
    assert "set MODEL_SERVER_TOKEN" in refusal(env)
    console = Settings.from_env({**env, "STAFF_SECRET_KEY": SECRET}, lock_store=False, serves_chat=False)
    assert any("MODEL_SERVER_TOKEN" in problem for problem in console.console_problems())
    chat = Settings.from_env({**PRODUCTION, "MODEL_SERVER_URL": "http://console:8081/models/live.tar.gz"})
    assert chat.endpoint_variables()["MODEL_SERVER_URL"] == "http://console:8081/models/live.tar.gz"
    assert chat.endpoint_variables()["MODEL_SERVER_TOKEN"] == SECRET
    assert chat.endpoint_variables()["MODEL_PULL_SECONDS"] == "10"


def test_production_profile_without_stores_lists_both_fixes() -> None:
    message = refusal({"CLINIC_PROFILE": "production", "DATABASE_URL": "sqlite:///x.db"})
    assert "DATABASE_URL=postgresql://" in message and "REDIS_HOST" in message


def test_action_server_needs_postgres_but_no_redis_in_production() -> None:
    env = {**PRODUCTION, "REDIS_HOST": ""}
    assert Settings.from_env(env, lock_store=False).database_url.startswith("postgresql://")
    assert "REDIS_HOST" in refusal(env)


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"CLINIC_PROFILE": "staging"}, "CLINIC_PROFILE must be one of local, production"),
        ({"RASA_API_TOKEN": "secret"}, "RASA_API_TOKEN must be at least 32 characters"),
        ({"RASA_JWT_SECRET": "short"}, "RASA_JWT_SECRET must be at least 32 characters"),
        ({"ACTION_SERVER_HOST": "0.0.0.0"}, "set ACTION_SERVER_TOKEN"),
        ({"ACTION_SERVER_TOKEN": "change-me-action-server-token"}, "still the placeholder"),
        ({"RASA_PORT": "http"}, "RASA_PORT must be a port number"),
        ({"REDIS_DB": "one"}, "REDIS_DB must be a number"),
    ],
)
def test_unsafe_settings_are_refused(env: dict, needle: str) -> None:
    assert needle in refusal(env)


def test_api_is_enabled_only_with_its_token() -> None:
    arguments = rasa_arguments(Settings.from_env({"RASA_API_TOKEN": SECRET}))
    assert arguments[arguments.index("--auth-token") + 1] == SECRET and "--enable-api" in arguments


def test_remote_action_server_is_allowed_with_a_token() -> None:
    settings = Settings.from_env({"ACTION_SERVER_HOST": "0.0.0.0", "ACTION_SERVER_TOKEN": SECRET})
    assert settings.endpoint_variables()["ACTION_SERVER_TOKEN"] == SECRET


def test_dotenv_fills_in_but_never_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# secrets\nexport RASA_API_TOKEN='from-dotenv-1234567'\n"
        "DATABASE_URL=sqlite:///dotenv.db\n\nnot a setting\n"
    )
    assert read_dotenv(dotenv) == {
        "RASA_API_TOKEN": "from-dotenv-1234567",
        "DATABASE_URL": "sqlite:///dotenv.db",
    }
    monkeypatch.setenv("DATABASE_URL", "sqlite:///real.db")
    env = environment(dotenv)
    assert (env["DATABASE_URL"], env["RASA_API_TOKEN"]) == ("sqlite:///real.db", "from-dotenv-1234567")


@pytest.mark.parametrize("module", ["servers.chat", "servers.actions"])
def test_servers_refuse_to_start_unsafe(module: str) -> None:
    """The servers themselves check: a public action server without a token never listens."""
    env = {"PATH": "/usr/bin:/bin", "ACTION_SERVER_HOST": "0.0.0.0", "CLINIC_PROFILE": "production"}
    result = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    assert result.returncode == 1 and "set ACTION_SERVER_TOKEN" in result.stderr
    assert "DATABASE_URL=postgresql://" in result.stderr
    assert ("REDIS_HOST" in result.stderr) == (module == "servers.chat")
    assert "CONVERSATION_SECRET" in result.stderr  # ids (Rasa) and the contacts' daily counts (actions)


@pytest.mark.parametrize("lock_store", [True, False], ids=["rasa server", "action server"])
def test_production_requires_the_action_server_token_even_on_loopback(lock_store: bool) -> None:
    env = {**PRODUCTION, "ACTION_SERVER_TOKEN": "", "ACTION_SERVER_HOST": "127.0.0.1"}
    with pytest.raises(SettingsError, match="set ACTION_SERVER_TOKEN for both servers"):
        Settings.from_env(env, lock_store=lock_store)


def test_production_chat_servers_require_a_conversation_secret_but_staff_commands_do_not() -> None:
    """Rasa signs ids with it; the action server keys the contacts' daily counts with it (issue 20)."""
    env = {**PRODUCTION, "CONVERSATION_SECRET": ""}
    assert "set CONVERSATION_SECRET" in refusal(env)
    with pytest.raises(SettingsError, match="set CONVERSATION_SECRET"):
        Settings.from_env(env, lock_store=False)  # the action server
    assert Settings.from_env(env, lock_store=False, serves_chat=False).conversation_secret is None


def test_the_local_profile_makes_its_conversation_secret_once_and_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "conversation-secret"
    first = local_conversation_secret(path)
    assert len(first) >= 32 and local_conversation_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_servers_starting_together_all_get_the_same_whole_secret(tmp_path: Path) -> None:
    """The chat and action servers start at once on a new machine: one secret, never an empty one."""
    from concurrent.futures import ProcessPoolExecutor

    for attempt in range(5):
        path = tmp_path / f"var{attempt}" / "conversation-secret"
        with ProcessPoolExecutor(max_workers=4) as pool:
            secrets_seen = set(pool.map(local_conversation_secret, [path] * 8))
        assert len(secrets_seen) == 1 and len(secrets_seen.pop()) >= 32
        assert [f.name for f in path.parent.iterdir()] == ["conversation-secret"]  # no drafts left


def test_a_configured_conversation_secret_is_the_key() -> None:
    assert Settings.from_env({"CONVERSATION_SECRET": SECRET}).conversation_key() == SECRET.encode()


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"CONVERSATION_SECRET": "short"}, "CONVERSATION_SECRET must be at least 32 characters"),
        ({"CHAT_INTEGRATION_TOKEN": "short"}, "CHAT_INTEGRATION_TOKEN must be at least 32 characters"),
        ({"ACTION_SERVER_TIMEOUT_SECONDS": "30"}, "ACTION_SERVER_TIMEOUT_SECONDS must be at most 8"),
        ({"MAX_MESSAGES_PER_MINUTE_PER_ADDRESS": "0"}, "MAX_MESSAGES_PER_MINUTE_PER_ADDRESS must be a whole"),
        ({"MAX_REQUESTS_PER_CONTACT_PER_DAY": "many"}, "MAX_REQUESTS_PER_CONTACT_PER_DAY must be a whole"),
    ],
)
def test_new_limits_and_secrets_are_checked(env: dict, needle: str) -> None:
    assert needle in refusal(env)
