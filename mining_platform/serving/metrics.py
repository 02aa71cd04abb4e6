"""`/metrics`: what the endpoint exports to Prometheus (prometheus-client, text exposition).

Counted as requests happen: requests by project, answering role and version, and status; rows scored by project,
role, version and whether they were the answer (a shadow's are not); latency histograms of the whole request, the
entity lookup and the model. Read from the endpoint's state at each scrape: the version each role serves, each
role's loads and failed loads, the prediction log's queue and counters, the replica's heartbeats.

An endpoint is one process (a replica scales by running more of them, each scraped on its own), so every metric
lives in a registry of its own app: no multiprocess directory is needed, and two apps in one process (the tests)
never share a metric. A project label is only ever a served project's name ("unknown" otherwise), so a client
cannot grow the label set by asking for made-up projects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from mining_platform.serving.online_features import FeatureStoreUnavailable
from mining_platform.serving.payload import BadRequest
from mining_platform.serving.prediction_log import PredictionLog
from mining_platform.serving.replicas import Follower
from mining_platform.serving.state import ProjectState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A prediction takes about a millisecond; an entity lookup a few; a cold or overloaded one seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NONE = "none"  # role and version of a request nothing answered (refused, failed)


class _State(Collector):
    """Gauges and counters read from the endpoint's state when Prometheus scrapes."""

    def __init__(self, states: dict[str, ProjectState], prediction_log: Callable[[], PredictionLog | None],
                 follower: Callable[[], Follower | None]):
        self._states, self._log, self._follower = states, prediction_log, follower

    def collect(self) -> Iterable[Metric]:
        served = GaugeMetricFamily("mining_endpoint_served_version", "1 for the version each role of a project "
                                   "serves now", labels=["project", "role", "model", "version"])
        up = GaugeMetricFamily("mining_endpoint_project_up", "1 when the project's champion is served",
                               labels=["project"])
        loads = CounterMetricFamily("mining_endpoint_loads", "Versions loaded into a role (reloads and follows)",
                                    labels=["project", "role"])
        failed = CounterMetricFamily("mining_endpoint_failed_loads", "Loads that failed (the role kept what it served)",
                                     labels=["project", "role"])
        for name, state in self._states.items():
            up.add_metric([name], 1.0 if state.model is not None else 0.0)
            for role_name, role in state.roles.items():
                if role.model is not None:
                    served.add_metric([name, role_name, role.model.name, role.model.version], 1.0)
                loads.add_metric([name, role_name], role.loads)
                failed.add_metric([name, role_name], role.failed_loads)
        yield from (served, up, loads, failed)
        log = self._log()
        if log is not None:
            described = log.describe()
            queue = GaugeMetricFamily("mining_endpoint_prediction_log_buffered", "Prediction-log records waiting to "
                                      "be written")
            queue.add_metric([], described["buffered"])
            written = CounterMetricFamily("mining_endpoint_prediction_log_written", "Prediction-log records written")
            written.add_metric([], described["written"])
            dropped = CounterMetricFamily("mining_endpoint_prediction_log_dropped", "Prediction-log records dropped, "
                                          "by reason", labels=["reason"])
            for reason, count in sorted(described["dropped"].items()):
                dropped.add_metric([reason], count)
            capped = CounterMetricFamily("mining_endpoint_prediction_log_capped", "Requests logged only in part (over "
                                         "MINING_PREDICTION_LOG_MAX_ROWS rows)")
            capped.add_metric([], described["capped"])
            yield from (queue, written, dropped, capped)
        follower = self._follower()
        if follower is not None:
            beats = CounterMetricFamily("mining_endpoint_heartbeats", "Heartbeats this replica wrote")
            beats.add_metric([], follower.describe().get("heartbeats", 0))
            yield beats


class EndpointMetrics:
    def __init__(self, states: dict[str, ProjectState], *, prediction_log: Callable[[], PredictionLog | None],
                 follower: Callable[[], Follower | None], known: Callable[[str], bool], enabled: bool = True):
        self.registry = CollectorRegistry(auto_describe=True)
        self._known = known
        self.enabled = enabled  # off (MINING_ENDPOINT_METRICS=off): nothing is counted or timed
        self.requests = Counter("mining_endpoint_requests", "Prediction requests, by the role and version that "
                                "answered (a canary split counts once per answering role) and status",
                                ["project", "role", "version", "status"], registry=self.registry)
        self.rows = Counter("mining_endpoint_rows_scored", "Rows scored, by role and version, and whether they were "
                            "the answer (a shadow challenger's are not)", ["project", "role", "version", "answered"],
                            registry=self.registry)
        self.request_seconds = Histogram("mining_endpoint_request_seconds", "Prediction requests, from routing to "
                                         "the answer", ["project"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.lookup_seconds = Histogram("mining_endpoint_feature_lookup_seconds", "Entity lookups of the latest "
                                        "committed features", ["project"], buckets=LATENCY_BUCKETS,
                                        registry=self.registry)
        self.model_seconds = Histogram("mining_endpoint_model_seconds", "Scoring a request's rows (every answering "
                                       "model)", ["project"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_State(states, prediction_log, follower))

    def project(self, name: str) -> str:
        return name if self._known(name) else "unknown"

    def request(self, project: str, status: int, started: float, answered: Iterable[tuple[str, str]] = ()) -> None:
        """One request ended with `status`; `answered`: the (role, version) of each model that answered rows."""
        if not self.enabled:
            return
        label = self.project(project)
        self.request_seconds.labels(label).observe(time.perf_counter() - started)
        roles = list(answered) or [(NONE, NONE)]
        for role, version in roles:
            self.requests.labels(label, role, version, str(status)).inc()

    def scored(self, project: str, role: str, version: str, rows: int, *, answered: bool) -> None:
        if self.enabled:
                self.rows.labels(self.project(project), role, version, "true" if answered else "false").inc(rows)

    def looked_up(self, project: str, seconds: float) -> None:
        if self.enabled:
            self.lookup_seconds.labels(self.project(project)).observe(seconds)

    def modelled(self, project: str, seconds: float) -> None:
        if self.enabled:
            self.model_seconds.labels(self.project(project)).observe(seconds)

    async def measured(self, project: str, call: Callable[[], Awaitable[tuple[Response, list[tuple[str, str]]]]],
                       ) -> Response:
        """Run one prediction request, counting and timing it whatever its outcome."""
        started = time.perf_counter()
        try:
            response, answered = await call()
        except BadRequest as exc:
            self.request(project, exc.status, started)
            raise
        except FeatureStoreUnavailable:
            self.request(project, 503, started)
            raise
        except Exception:
            self.request(project, 500, started)
            raise
        self.request(project, 200, started, answered)
        return response

    def response(self) -> Response:
        """The scrape's answer: the text exposition, or 404 when metrics are off."""
        if not self.enabled:
            return Response(json.dumps({"detail": "metrics are off (MINING_ENDPOINT_METRICS=off)"}), status_code=404,
                            media_type="application/json")
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)
