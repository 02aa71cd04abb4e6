"""EndpointResource: the scoring endpoint, seen from the assets and sensors."""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:  # the client needs httpx: loaded when a step calls the endpoint, not by the code location
    from mining_platform.deployment.endpoint import EndpointClient


class EndpointResource(dg.ConfigurableResource):
    """The scoring endpoint: its base URL and the bearer token for admin calls."""

    url: str = Field(description="Base URL of the endpoint (MINING_ENDPOINT_URL).")
    admin_token: str | None = Field(
        default=None,
        description="Bearer token for admin calls (MINING_ADMIN_TOKEN); "
        "defaults to the token file $MINING_HOME/admin_token.",
    )
    timeout_seconds: float = Field(default=10.0, description="Timeout of one HTTP call.")
    reload_timeout_seconds: float = Field(
        default=300.0, description="Timeout of a reload, which downloads and loads the model."
    )
    converge_timeout_seconds: float = Field(
        default=120.0, description="How long a deployment waits for every live endpoint replica to serve the new "
        "version (MINING_DEPLOY_CONVERGE_SECONDS).")

    def client(self) -> "EndpointClient":
        from mining_platform.deployment.endpoint import EndpointClient

        return EndpointClient(self.url, admin_token=self.admin_token, timeout_seconds=self.timeout_seconds,
                              reload_timeout_seconds=self.reload_timeout_seconds)

    def resolved_admin_token(self) -> str:
        """The configured token, else MINING_ADMIN_TOKEN or the token file (created if missing)."""
        return self.client().resolved_admin_token()

    def health(self) -> dict:
        """`GET /health`; raises `EndpointError` when the endpoint is down or unhealthy."""
        return self.client().health()

    def version(self, project: str) -> dict:
        """`GET /v1/<project>/version`: the served model."""
        return self.client().version(project)
