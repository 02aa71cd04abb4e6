"""EndpointResource: the scoring endpoint, seen from the assets and sensors."""

import dagster as dg
import httpx
from pydantic import Field

from mining_platform import settings


class EndpointError(RuntimeError):
    """The endpoint could not be reached or refused a call; the message has its answer.

    `transient` when trying again later may succeed: unreachable, or a 502/503/504 answer.
    """

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


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

    def resolved_admin_token(self) -> str:
        """The configured token, else MINING_ADMIN_TOKEN or the token file (created if missing)."""
        return self.admin_token or settings.admin_token()

    def _call(self, method: str, path: str, *, timeout: float, **kwargs) -> dict:
        url = f"{self.url.rstrip('/')}{path}"
        try:
            response = httpx.request(method, url, timeout=timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise EndpointError(f"cannot reach the endpoint at {url}: {type(exc).__name__}: {exc}",
                                transient=True) from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise EndpointError(f"{method} {url} answered {response.status_code}: {detail}",
                                transient=response.status_code in (502, 503, 504))
        return response.json()

    def health(self) -> dict:
        """`GET /health`; raises `EndpointError` when the endpoint is down or unhealthy."""
        return self._call("GET", "/health", timeout=self.timeout_seconds)

    def reload(self, project: str) -> dict:
        """`POST /v1/<project>/reload`: serve the current champion; raises `EndpointError` saying why not."""
        return self._call("POST", f"/v1/{project}/reload", timeout=self.reload_timeout_seconds,
                          headers={"Authorization": f"Bearer {self.resolved_admin_token()}"})

    def version(self, project: str) -> dict:
        """`GET /v1/<project>/version`: the served model (name, version, run id, loaded_at, features)."""
        return self._call("GET", f"/v1/{project}/version", timeout=self.timeout_seconds)

    def predict(self, project: str, body: dict) -> dict:
        return self._call("POST", f"/v1/{project}/predict", timeout=self.timeout_seconds, json=body)
