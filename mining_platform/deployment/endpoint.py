"""The scoring endpoint as its deployers see it: reload, version, predict, health over HTTP."""

import httpx

from mining_platform import settings
from mining_platform.transient import ClassifiedError


class EndpointError(ClassifiedError):
    """The endpoint could not be reached or refused a call; the message has its answer.

    `transient` when trying again later may succeed: unreachable, or a 502/503/504 answer.
    """


class EndpointClient:
    """Calls to one endpoint; the admin token defaults to MINING_ADMIN_TOKEN or the token file."""

    def __init__(self, url: str, *, admin_token: str | None = None, timeout_seconds: float = 10.0,
                 reload_timeout_seconds: float = 300.0):
        self.url = url
        self.admin_token = admin_token
        self.timeout_seconds = timeout_seconds
        self.reload_timeout_seconds = reload_timeout_seconds

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
        """`GET /health` with its details (the admin token); raises `EndpointError` when the endpoint is down."""
        return self._call("GET", "/health", timeout=self.timeout_seconds,
                          headers={"Authorization": f"Bearer {self.resolved_admin_token()}"})

    def reload(self, project: str, role: str = "champion") -> dict:
        """`POST /v1/<project>/reload?role=…`: serve the version the role's alias names (the challenger: none when
        the alias is gone); raises `EndpointError` saying why not."""
        return self._call("POST", f"/v1/{project}/reload", timeout=self.reload_timeout_seconds,
                          params={"role": role}, headers={"Authorization": f"Bearer {self.resolved_admin_token()}"})

    def version(self, project: str) -> dict:
        """`GET /v1/<project>/version`: the served model (name, version, run id, loaded_at, features)."""
        return self._call("GET", f"/v1/{project}/version", timeout=self.timeout_seconds)

    def predict(self, project: str, body: dict, *, request_key: str | None = None) -> dict:
        headers = {"X-Request-Key": request_key} if request_key is not None else {}
        return self._call("POST", f"/v1/{project}/predict", timeout=self.timeout_seconds, json=body, headers=headers)
