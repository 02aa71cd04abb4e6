"""Delivering an alert to every sink a project's `alerts:` name: a webhook (JSON, HMAC-SHA256 signature, retries
with exponential backoff), email over SMTP (STARTTLS and a login when configured), and the log.

A sink that fails does not stop the others; each delivery says how it went, and a failed one is logged. Secrets are
read from the environment when sending, named by the project file, never written in it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage

from mining_platform.alerts.alert import Alert
from mining_platform.spec.alerts_config import AlertsConfig, EmailConfig, WebhookConfig

log = logging.getLogger("mining_platform.alerts")
SIGNATURE_HEADER = "X-Mining-Signature"
BACKOFF_SECONDS = 1.0  # first retry after this, doubling


@dataclass(frozen=True)
class Delivery:
    sink: str  # webhook, email or log
    delivered: bool
    attempts: int = 1
    error: str | None = None


def signature(secret: str, body: bytes) -> str:
    """The webhook signature header's value: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _secret(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise LookupError(f"{what}: the environment variable {name} is not set")
    return value


def send_webhook(alert: Alert, config: WebhookConfig, *, sleep=time.sleep) -> Delivery:
    import httpx  # here: loading a code location (which builds the alert sensors) must not load it

    body = alert.body()
    headers = {"Content-Type": "application/json", "User-Agent": "mining-platform-alerts",
               "X-Mining-Event": alert.event}
    try:
        secret = _secret(config.secret_env, "the webhook's secret_env")
    except LookupError as exc:
        return Delivery("webhook", False, 0, str(exc))
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    error = None
    for attempt in range(1, config.retries + 2):
        try:
            response = httpx.post(str(config.url), content=body, headers=headers, timeout=config.timeout_seconds)
            if response.status_code < 300:
                return Delivery("webhook", True, attempt)
            error = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                return Delivery("webhook", False, attempt, error)  # the receiver refuses it: retrying cannot help
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt <= config.retries:
            sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    return Delivery("webhook", False, config.retries + 1, error)


def send_email(alert: Alert, config: EmailConfig) -> Delivery:
    message = EmailMessage()
    title = " ".join(alert.title.split())  # a header holds no line break (an error message may)
    message["Subject"] = f"[mining-platform] {alert.project}: {title}"[:250]
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message.set_content(alert.text())
    smtp = config.smtp
    try:
        user = _secret(smtp.user_env, "the SMTP user_env")
        password = _secret(smtp.password_env, "the SMTP password_env")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
            if smtp.starttls:
                client.starttls()
            if user is not None:
                client.login(user, password)
            client.send_message(message)
    except (LookupError, OSError, smtplib.SMTPException) as exc:
        return Delivery("email", False, 1, f"{type(exc).__name__}: {exc}")
    return Delivery("email", True)


def send(alert: Alert, config: AlertsConfig, *, sleep=time.sleep) -> list[Delivery]:
    """Send `alert` wherever `config` says, if it wants the event; every sink is tried."""
    if not config.wants(alert.event):
        return []
    deliveries = []
    if config.log:
        log.warning(alert.text().replace("\n", " | "))
        deliveries.append(Delivery("log", True))
    if config.webhook is not None:
        deliveries.append(send_webhook(alert, config.webhook, sleep=sleep))
    if config.email is not None:
        deliveries.append(send_email(alert, config.email))
    for delivery in deliveries:
        if not delivery.delivered:
            log.error(f"alert {alert.event} of {alert.project} not delivered by {delivery.sink} after "
                      f"{delivery.attempts} attempt(s): {delivery.error}")
    return deliveries
