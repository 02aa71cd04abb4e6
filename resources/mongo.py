"""MongoResource: the write connection and the analytics connection for heavy aggregations."""

import os
import threading

import dagster as dg
from pydantic import Field
from pymongo import MongoClient, uri_parser
from pymongo.database import Database

from mining_platform.spec.names import demo_database, endpoint_database, project_database
from mining_platform.store.traffic import REPLY_BYTES_LISTENER

READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")

# One client per (process, settings): pymongo clients pool connections and are not
# fork-safe, so a forked run worker gets its own instead of inheriting its parent's.
_clients: dict[tuple, MongoClient] = {}
_clients_lock = threading.Lock()


def _shared_client(uri: str, **options) -> MongoClient:
    key = (os.getpid(), uri, tuple(sorted(options.items())))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = MongoClient(uri, tz_aware=True, event_listeners=[REPLY_BYTES_LISTENER], **options)
            _clients[key] = client
        return client


class MongoResource(dg.ConfigurableResource):
    """MongoDB for platform metadata and writes, and for heavy aggregations (analytics)."""

    uri: str = Field(description="Connection string for metadata and writes (MINING_MONGO_URI).")
    analytics_uri: str | None = Field(
        default=None,
        description="Connection string for heavy aggregations (MINING_MONGO_ANALYTICS_URI); "
        "defaults to `uri`. In production point it at secondaries or tagged analytics nodes.",
    )
    analytics_read_preference: str = Field(
        default="secondaryPreferred",
        description="Read preference of the analytics connection when its URI sets none.",
    )
    database: str = Field(
        description="The platform database (MINING_MONGO_DB): the default database of sources and platform-wide "
        "records; each project writes only into its own namespace `<database>_<project>`.")
    app_name: str = Field(default="mining-platform", description="Shown in the server's logs and currentOp.")
    server_selection_timeout_ms: int = Field(
        default=10_000, description="How long to wait for a suitable server before failing."
    )
    connect_timeout_ms: int = Field(default=10_000, description="TCP connect timeout.")
    socket_timeout_ms: int | None = Field(
        default=None,
        description="Per-operation socket timeout; None waits as long as the server works "
        "(long aggregations are bounded by maxTimeMS instead).",
    )

    def _options(self) -> dict:
        options = {
            "appname": self.app_name,
            "serverSelectionTimeoutMS": self.server_selection_timeout_ms,
            "connectTimeoutMS": self.connect_timeout_ms,
        }
        if self.socket_timeout_ms is not None:
            options["socketTimeoutMS"] = self.socket_timeout_ms
        return options

    def client(self) -> MongoClient:
        return _shared_client(self.uri, **self._options())

    def analytics_client(self) -> MongoClient:
        uri = self.analytics_uri or self.uri
        options = self._options()
        # A read preference (with tag sets) in the URI wins; otherwise apply ours.
        if "readPreference" not in uri_parser.parse_uri(uri)["options"]:
            if self.analytics_read_preference not in READ_PREFERENCES:
                raise ValueError(
                    f"analytics_read_preference: {self.analytics_read_preference!r} is not one of "
                    f"{', '.join(READ_PREFERENCES)}"
                )
            options["readPreference"] = self.analytics_read_preference
        return _shared_client(uri, **options)

    def db(self) -> Database:
        """The platform database on the write connection (sources by default, platform-wide records)."""
        return self.client()[self.database]

    def analytics_db(self) -> Database:
        """The platform database on the analytics connection, for heavy reads of sources."""
        return self.analytics_client()[self.database]

    def project_db(self, project: str) -> Database:
        """A project's namespace on the write connection: everything the project writes lives there."""
        return self.client()[project_database(self.database, project)]

    def demo_db(self, project: str) -> Database:
        """A project's demo database: the seeded events its demo generator writes (a `demo_of` source)."""
        return self.client()[demo_database(self.database, project)]

    def endpoint_db(self, project: str) -> Database:
        """What the endpoint writes for a project (its prediction log, its replicas' heartbeats): read here."""
        return self.client()[endpoint_database(self.database, project)]

    def analytics_project_db(self, project: str) -> Database:
        """A project's namespace on the analytics connection, for heavy aggregations."""
        return self.analytics_client()[project_database(self.database, project)]
