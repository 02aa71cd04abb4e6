"""EndpointResource: the scoring endpoint, seen from the assets and sensors."""

import dagster as dg
import httpx
from pydantic import Field

from mining_platform import settings


class EndpointResource(dg.ConfigurableResource):
    """The scoring endpoint: its base URL and the bearer token for admin calls."""

    url: str = Field(description="Base URL of the endpoint (MINING_ENDPOINT_URL).")
    admin_token: str | None = Field(
        default=None,
        description="Bearer token for admin calls (MINING_ADMIN_TOKEN); "
        "defaults to the token file $MINING_HOME/admin_token.",
    )
    timeout_seconds: float = Field(default=10.0, description="Timeout of one HTTP call.")

    def resolved_admin_token(self) -> str:
        """The configured token, else MINING_ADMIN_TOKEN or the token file (created if missing)."""
        return self.admin_token or settings.admin_token()

    def health(self) -> dict:
        """`GET /health`; raises `httpx.HTTPError` when the endpoint is down or unhealthy."""
        response = httpx.get(f"{self.url.rstrip('/')}/health", timeout=self.timeout_seconds)
        response.raise_for_status()
        return response.json()
