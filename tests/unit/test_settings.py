"""Deployment settings: unsafe or half-configured servers are refused with the fix spelled out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from common.settings import Settings, SettingsError, environment, read_dotenv
from servers.chat import rasa_arguments

SECRET = "s3cret-value-long-enough-0123456789abcdef"
PRODUCTION = {
    "CLINIC_PROFILE": "production",
    "DATABASE_URL": "postgresql://u:p@db:5432/clinic",
    "REDIS_HOST": "redis",
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
