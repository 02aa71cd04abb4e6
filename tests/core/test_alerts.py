"""Alerts delivered to real local receivers: a webhook signed with HMAC-SHA256 and retried with backoff, email
over SMTP (aiosmtpd), the log; a sink that fails does not stop the others."""

import hashlib
import hmac
import json
import logging

import pytest

from mining_platform.alerts import Alert, send
from mining_platform.spec.alerts_config import AlertsConfig
from tests.fixtures.receivers import Webhook, smtp_server

SECRET = "s3cret-for-tests"


def config(**sinks) -> AlertsConfig:
    return AlertsConfig.model_validate(sinks)


def alert(**changes) -> Alert:
    return Alert(**{"project": "shop", "event": "run_failure", "title": "run abc failed in shop__model",
                    "details": {"run_id": "abc", "step": "shop__model", "error": "boom"},
                    "url": "http://dagster.example/runs/abc", "key": "shop:run_failure:abc", **changes})


def test_a_webhook_gets_the_alert_signed_and_a_failed_delivery_is_retried(monkeypatch):
    monkeypatch.setenv("MINING_ALERT_SECRET", SECRET)
    waits = []
    with Webhook(statuses=[503, 500]) as hook:
        [log, delivery] = send(alert(), config(webhook={"url": hook.url, "secret_env": "MINING_ALERT_SECRET",
                                                        "retries": 3}), sleep=waits.append)
    assert log.delivered and delivery.delivered and delivery.attempts == 3
    assert waits == [1.0, 2.0]  # exponential backoff between attempts
    last = hook.requests[-1]
    assert len(hook.requests) == 3 and last["path"] == "/alerts"
    expected = "sha256=" + hmac.new(SECRET.encode(), last["body"], hashlib.sha256).hexdigest()
    assert last["headers"]["X-Mining-Signature"] == expected
    assert last["headers"]["X-Mining-Event"] == "run_failure"
    body = json.loads(last["body"])
    assert body["project"] == "shop" and body["details"]["step"] == "shop__model"
    assert body["url"] == "http://dagster.example/runs/abc" and body["key"] == "shop:run_failure:abc"


def test_a_refusing_receiver_is_not_retried_and_the_other_sinks_still_deliver(monkeypatch, caplog):
    with Webhook(statuses=[400]) as hook, smtp_server() as (port, messages):
        deliveries = send(alert(), config(
            webhook={"url": hook.url}, email={"to": ["ops@example.com"], "from": "mining@example.com",
                                              "smtp": {"host": "127.0.0.1", "port": port, "starttls": False}}),
            sleep=lambda s: None)
    by_sink = {d.sink: d for d in deliveries}
    assert not by_sink["webhook"].delivered and by_sink["webhook"].attempts == 1
    assert by_sink["webhook"].error == "HTTP 400" and len(hook.requests) == 1
    assert "X-Mining-Signature" not in hook.requests[0]["headers"]  # no secret configured: unsigned
    assert by_sink["email"].delivered
    [message] = messages
    assert str(message["Subject"]).strip() == "[mining-platform] shop: run abc failed in shop__model"
    assert message["X-Envelope-To"] == "ops@example.com" and message["From"] == "mining@example.com"
    assert "error: boom" in message.get_content() and "http://dagster.example/runs/abc" in message.get_content()


def test_an_unreachable_webhook_is_reported_after_its_retries(caplog):
    with Webhook() as hook:
        url = hook.url
    caplog.set_level(logging.ERROR, logger="mining_platform.alerts")
    [_, delivery] = send(alert(), config(webhook={"url": url, "retries": 2}), sleep=lambda s: None)
    assert not delivery.delivered and delivery.attempts == 3 and "ConnectError" in delivery.error
    assert "not delivered by webhook after 3 attempt(s)" in caplog.text


def test_a_missing_secret_is_an_undelivered_alert_naming_the_variable(monkeypatch):
    monkeypatch.delenv("MINING_ALERT_SECRET", raising=False)
    with Webhook() as hook:
        [_, delivery] = send(alert(), config(webhook={"url": hook.url, "secret_env": "MINING_ALERT_SECRET"}))
    assert not delivery.delivered and hook.requests == []
    assert delivery.error == "the webhook's secret_env: the environment variable MINING_ALERT_SECRET is not set"


def test_a_title_with_line_breaks_makes_one_subject_line():
    with smtp_server() as (port, messages):
        [_, delivery] = send(alert(title="failed:\nBcc: victim@example.com"), config(
            email={"to": ["ops@example.com"], "from": "mining@example.com",
                   "smtp": {"host": "127.0.0.1", "port": port, "starttls": False}}))
    assert delivery.delivered
    assert str(messages[0]["Subject"]).strip() == "[mining-platform] shop: failed: Bcc: victim@example.com"
    assert messages[0]["Bcc"] is None


def test_only_the_events_asked_for_alert_and_decisions_are_opt_in():
    quiet = config(log=True)
    assert send(alert(event="drift_decision"), quiet) == []
    assert [d.sink for d in send(alert(event="drift_decision"), config(events=["drift_decision"]))] == ["log"]
    with pytest.raises(ValueError, match="unknown alert event 'everything'"):
        alert(event="everything")
