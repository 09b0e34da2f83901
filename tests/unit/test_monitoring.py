"""Monitoring (issue 23): who may read /metrics, log lines, turn outcomes, the example alerts.

The example Prometheus configuration and alert rules are checked by promtool when it is
installed (Debian's `prometheus` package ships it).

The servers' own /metrics and log lines are tested on real servers in tests/e2e/test_e2e.py.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered

from common import logs, metrics
from common.names import ERASE_SLOT
from common.paths import PROJECT_ROOT
from common.settings import Settings, SettingsError
from servers import monitoring
from tests.unit.test_settings import PRODUCTION

TOKEN = "metrics-token-0123456789abcdefghijklmnopq"
PROMETHEUS = PROJECT_ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def status(config: Settings, headers: dict[str, str], peer: str | None = "127.0.0.1") -> int:
    return metrics.answer(config, metrics.CHAT, headers, peer)[0]


def test_metrics_are_off_until_a_token_or_a_network_is_set() -> None:
    status_code, body, _ = metrics.answer(settings(), metrics.CHAT, {}, "127.0.0.1")
    assert status_code == 404 and b"clinic_" not in body


def test_the_token_opens_metrics_and_anything_else_is_refused() -> None:
    config = settings(METRICS_TOKEN=TOKEN)
    assert status(config, {"Authorization": f"Bearer {TOKEN}"}, "203.0.113.9") == 200
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        refused, body, answer_headers = metrics.answer(config, metrics.CHAT, headers, "127.0.0.1")
        assert (
            refused == 401
            and b"clinic_" not in body
            and answer_headers["WWW-Authenticate"].startswith("Bearer")
        )


def test_an_allowed_network_opens_metrics_only_when_connecting_straight() -> None:
    config = settings(METRICS_ALLOWED_NETWORKS="10.0.0.0/8, fd00::/8")
    assert status(config, {}, "10.2.3.4") == 200 and status(config, {}, "fd00::1") == 200
    assert status(config, {}, "192.0.2.1") == 401 and status(config, {}, None) == 401
    # Through a proxy inside the network, the visitor's request looks internal: refused.
    assert status(config, {"X-Forwarded-For": "198.51.100.7"}, "10.0.0.5") == 401
    assert status(config, {"Forwarded": "for=198.51.100.7"}, "10.0.0.5") == 401


def test_bad_monitoring_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(SettingsError) as error:
        settings(METRICS_ALLOWED_NETWORKS="internal", LOG_FORMAT="xml", METRICS_TOKEN="short")
    message = str(error.value)
    assert "METRICS_ALLOWED_NETWORKS must list networks" in message
    assert "LOG_FORMAT must be one of text, json" in message
    assert "METRICS_TOKEN must be at least 32 characters" in message


def test_json_logs_are_the_production_default() -> None:
    assert Settings.from_env(PRODUCTION).log_format == "json"
    assert settings().log_format == "text"
    assert Settings.from_env({**PRODUCTION, "LOG_FORMAT": "text"}).log_format == "text"


def formatted(formatter: logging.Formatter, emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(logs.RequestIdFilter())
    logger = logging.getLogger("tests.monitoring")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_json_line_has_the_fields_and_an_error_without_its_message() -> None:
    def emit(logger: logging.Logger) -> None:
        logs.start_request()
        logs.log_event(logger, "Message handled.", outcome="answered", duration_ms=42, text="my name is Ann")
        try:
            raise ValueError("ann@example.com")
        except ValueError:
            logger.exception("Could not store it.")

    lines = [json.loads(line) for line in formatted(logs.JsonFormatter("chat"), emit).splitlines()]
    first, second = lines
    assert {"time", "level", "service", "logger", "message", "request_id"} <= set(first)
    assert (first["service"], first["level"], first["outcome"], first["duration_ms"]) == (
        "chat",
        "info",
        "answered",
        42,
    )
    assert "text" not in first  # only the known event fields are written
    assert second["request_id"] == first["request_id"] and second["error"].startswith("ValueError at ")
    assert "ann@example.com" not in json.dumps(second)


def test_a_request_id_is_random_and_only_a_well_formed_one_is_taken_up() -> None:
    given = logs.new_request_id()
    assert logs.start_request(given) == given
    assert logs.start_request("conversation-1234") != "conversation-1234"
    assert logs.new_request_id() != logs.new_request_id()


def test_text_lines_keep_the_plain_format_with_the_fields_after_it() -> None:
    def emit(logger: logging.Logger) -> None:
        logs.start_request("0" * 32)
        logs.log_event(logger, "Message handled.", outcome="answered", duration_ms=7)

    line = formatted(logs.TextFormatter(), emit)
    assert "INFO tests.monitoring  Message handled.  (outcome=answered, duration_ms=7, request=" in line


def bot(name: str) -> BotUttered:
    return BotUttered("...", metadata={"utter_action": name})


@pytest.mark.parametrize(
    ("after", "paused", "outcome"),
    [
        ([ActionExecuted("action_answer_faq"), bot("utter_faq/what_is")], False, "answered"),
        ([ActionExecuted("action_two_stage_fallback"), bot("utter_did_you_mean")], False, "did-you-mean"),
        ([bot("utter_ask_rephrase")], False, "not-understood"),
        ([bot("utter_out_of_scope")], False, "no-information"),
        ([bot("utter_urgent")], False, "urgent"),
        ([SlotSet(ERASE_SLOT, True), bot("utter_erased")], False, "erasure"),
        ([], True, "live-chat"),
        ([], False, "no-reply"),
    ],
)
def test_a_turns_outcome_is_read_from_what_the_visitor_was_shown(
    after: list, paused: bool, outcome: str
) -> None:
    earlier = [UserUttered("hello"), bot("utter_urgent"), SlotSet(ERASE_SLOT, True)]  # a previous turn
    events = [*earlier, UserUttered("now"), *after, ActionExecuted("action_listen")]
    assert monitoring.outcome_of(events, paused) == outcome


def test_a_failed_turn_names_the_dependency_behind_it() -> None:
    from servers.faults import ActionServerFailed

    try:
        try:
            raise TimeoutError
        except TimeoutError as error:
            raise ActionServerFailed("action failed") from error
    except ActionServerFailed as failed:
        assert monitoring.failed_dependency(failed) == metrics.ACTION_SERVER
    import sqlalchemy.exc

    assert (
        monitoring.failed_dependency(sqlalchemy.exc.OperationalError("x", {}, Exception()))
        == metrics.DATABASE
    )
    assert monitoring.failed_dependency(RuntimeError()) is None


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
@pytest.mark.parametrize(
    "command",
    [
        ["check", "config", "--syntax-only", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ],
)
def test_the_example_prometheus_configuration_and_alerts_pass_promtool(command: list[str]) -> None:
    result = subprocess.run(
        [str(PROMTOOL), *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_name_only_metrics_the_servers_serve() -> None:
    """A renamed metric would leave its alert silent forever."""
    import re

    served = {
        "up",
        *(name for registry in (metrics.CHAT, metrics.ACTIONS, metrics.CONSOLE) for name in _names(registry)),
        "clinic_live_chat_waiting",
        "clinic_live_chat_oldest_wait_seconds",
        "clinic_model_info",
        "clinic_model_age_seconds",
    }
    rules = (PROMETHEUS / "alerts.yml").read_text(encoding="utf-8")
    named = set(re.findall(r"\b(clinic_[a-z_]+|up)\b(?=[{\[\s)])", rules))
    assert named and not named - served, sorted(named - served)


def _names(registry) -> set[str]:
    """Every sample name a registry can produce (counters' _total, histograms' _bucket ...)."""
    names = set()
    for family in registry.collect():
        names.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_a_proxy_that_adds_any_forwarding_header_never_counts_as_an_allowed_network() -> None:
    """A proxy inside the network that says who the caller is (X-Real-IP, ...) is not the scraper."""
    config = settings(METRICS_ALLOWED_NETWORKS="127.0.0.0/8")
    assert status(config, {}, "127.0.0.1") == 200
    for header in ("X-Real-IP", "x-real-ip", "True-Client-IP", "CF-Connecting-IP", "X-Forwarded-Host"):
        assert status(config, {header: "8.8.8.8"}, "127.0.0.1") == 401, header


def test_an_ipv4_mapped_ipv6_peer_is_compared_by_its_ipv4_address() -> None:
    config = settings(METRICS_ALLOWED_NETWORKS="127.0.0.0/8")
    assert status(config, {}, "::ffff:127.0.0.1") == 200
    assert status(config, {}, "::ffff:8.8.8.8") == 401


def test_the_urgent_reply_has_one_definition() -> None:
    from common import names
    from staff.service import review

    assert monitoring.URGENT_REPLY is names.URGENT_REPLY and review.URGENT_REPLY is names.URGENT_REPLY


def test_a_turn_is_counted_only_under_a_known_channel_and_outcome() -> None:
    def count(channel: str, outcome: str) -> float:
        return (
            metrics.CHAT.get_sample_value("clinic_messages_total", {"channel": channel, "outcome": outcome})
            or 0.0
        )

    before = count("other", "no-reply")
    with monitoring.turn("made-up-channel") as current:
        current.outcome = "made-up-outcome"
    monitoring.refused("another-made-up-channel", metrics.TOO_FAST)
    assert count("made-up-channel", "made-up-outcome") == 0 and count("other", "no-reply") == before + 1
    assert count("another-made-up-channel", metrics.TOO_FAST) == 0


ACTION_TOKEN = "action-token-0123456789abcdefghijklmnop"


def post_to_action_server(calls: list[tuple[dict[str, str], dict]]) -> list[int]:
    """POST each (headers, body) to /webhook of a real action server on loopback; the statuses."""
    import asyncio
    import socket
    import urllib.error
    import urllib.request

    from servers import actions

    app = actions.create_app(ACTION_TOKEN, settings(METRICS_TOKEN=TOKEN))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def post(headers: dict[str, str], body: dict) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhook",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code

    async def run() -> list[int]:
        server = await app.create_server(
            host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
        )
        await server.startup()
        loop = asyncio.get_running_loop()
        try:
            return [await loop.run_in_executor(None, post, headers, body) for headers, body in calls]
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


def test_unauthorised_action_calls_add_no_metric_and_action_names_are_the_domains() -> None:
    def runs(action: str) -> float:
        return sum(
            metrics.ACTIONS.get_sample_value("clinic_actions_total", {"action": action, "result": result})
            or 0.0
            for result in ("ok", "error", "too_late")
        )

    before = {name: runs(name) for name in ("invented_action_name", "other", "action_answer_faq")}
    statuses = post_to_action_server(
        [
            ({}, {"next_action": "invented_action_name"}),  # no token: refused, not counted
            ({"Authorization": "Bearer wrong"}, {"next_action": "action_answer_faq"}),
            ({"Authorization": f"Bearer {ACTION_TOKEN}"}, {"next_action": "invented_action_name"}),
        ]
    )
    assert statuses[:2] == [401, 401] and statuses[2] != 401
    assert runs("invented_action_name") == before["invented_action_name"] == 0
    assert runs("action_answer_faq") == before["action_answer_faq"]  # the refused call
    assert runs("other") == before["other"] + 1  # the authorised call, under a fixed name


def test_the_action_label_is_one_of_the_domains_actions_or_other() -> None:
    from servers import actions

    assert actions.action_label("action_answer_faq") == "action_answer_faq"
    assert actions.action_label("validate_booking_form") == "validate_booking_form"
    assert actions.action_label("a" * 60) == actions.action_label("unknown") == "other"
