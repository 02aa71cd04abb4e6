"""`alerts:` of project.yaml: where a project's alerts go (a webhook, email, the log) and which events alert.

Secrets never live in the file: the webhook's signing secret and the SMTP password are read from environment
variables the file names (`secret_env`, `password_env`), in the process that sends (the Dagster daemon's sensors).
"""

import re
from typing import Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from mining_platform.spec.strict import Strict

ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"
# An email address as a mailbox (local@domain): strict enough to refuse a header injection ("a@b\nBcc: …").
MAILBOX = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"

# What can alert. The first five are on by default; decisions are opt-in (they are news, not trouble).
EVENTS = ("run_failure", "gate_failed", "retrain_failing", "samples_overdue", "replica_silent",
          "drift_decision", "performance_decision")
DEFAULT_EVENTS = EVENTS[:5]
Event = Literal[EVENTS]  # type: ignore[valid-type]


class WebhookConfig(Strict):
    """A JSON POST per alert, signed with HMAC-SHA256 over the body (header `X-Mining-Signature: sha256=<hex>`)."""

    url: HttpUrl
    secret_env: str | None = Field(default=None, pattern=ENV_NAME,
                                   description="The environment variable holding the signing secret.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    retries: int = Field(default=3, ge=0, le=10, description="Retries after a failed delivery, with backoff.")


class SmtpConfig(Strict):
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    user_env: str | None = Field(default=None, pattern=ENV_NAME)
    password_env: str | None = Field(default=None, pattern=ENV_NAME)
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _login(self) -> "SmtpConfig":
        if (self.user_env is None) != (self.password_env is None):
            raise ValueError("give user_env and password_env together (or neither, for a relay without login)")
        return self


class EmailConfig(Strict):
    to: list[str] = Field(min_length=1, max_length=50)
    sender: str = Field(alias="from", pattern=MAILBOX)
    smtp: SmtpConfig

    @field_validator("to")
    @classmethod
    def _mailboxes(cls, to: list[str]) -> list[str]:
        bad = [address for address in to if not re.fullmatch(MAILBOX, address)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(repr(b) for b in bad)}")
        return to


class AlertsConfig(Strict):
    webhook: WebhookConfig | None = None
    email: EmailConfig | None = None
    log: bool = Field(default=True, description="Write every alert to the log of the process that sends it.")
    events: list[Event] = Field(default_factory=lambda: list(DEFAULT_EVENTS),
                                description="What alerts; drift_decision and performance_decision are opt-in.")
    retrain_failures: int = Field(default=3, ge=1, le=100,
                                  description="retrain_failing: this many versions in a row failed their gate.")
    overdue_days: int = Field(default=1, ge=0, le=365, description="samples_overdue: a sample day still refused as "
                              "immature this many days after its label window should have closed.")

    def wants(self, event: str) -> bool:
        return event in self.events
