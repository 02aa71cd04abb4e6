"""Loading what each role should serve and swapping it in: the serving record's version (else the role's MLflow
alias), loaded and smoke-tested in a worker thread, then swapped in with one reference assignment between two
requests. A version that cannot be loaded never replaces one that works; one that failed for the same record
is not tried again until the record changes or `/reload` asks.
"""

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from pymongo.errors import PyMongoError

from mining_platform.serving.config import ServingConfig
from mining_platform.serving.replicas import Follower
from mining_platform.serving.served_model import (
    ChampionLoadFailed,
    NoChampion,
    RegistryUnavailable,
    aliased,
    champion_version,
    load_version,
)
from mining_platform.serving.state import ProjectState
from mining_platform.spec.names import CHALLENGER, CHAMPION, ROLES
from mining_platform.spec.project import ProjectConfigError
from mining_platform.spec.replicas import LoadError

log = logging.getLogger("mining_platform.serving")


class Swapper:
    """Loads and swaps every role of the endpoint's projects; `follower` gives the replica's follower (None before
    the endpoint started, or in a test without MongoDB)."""

    def __init__(self, config: ServingConfig, follower: Callable[[], Follower | None]):
        self.config, self.follower = config, follower

    async def wanted(self, state: ProjectState, role: str, *, follow_alias: bool) -> tuple[str | None, object] | None:
        """(the version `role` should serve, the record's stamp): the serving record's, else the alias's
        (the champion: NoChampion when neither names one); None when there is no record and not `follow_alias`."""
        follower = self.follower()
        try:
            record = await follower.desired(state.spec.name, role) if follower else None
        except PyMongoError as exc:
            log.warning(f"{state.spec.name}: cannot read the serving record of {role} ({exc}); following the alias")
            record = None
        if record is not None:
            if role == CHAMPION and record.get("version") is None:
                raise NoChampion(f"the serving record of {state.model_name} names no champion")
            return record.get("version"), record.get("set_at")
        if not follow_alias:
            return None
        if role == CHAMPION:
            return await asyncio.to_thread(champion_version, self.config.tracking_uri, state.model_name), None
        return await asyncio.to_thread(aliased, self.config.tracking_uri, state.model_name, CHALLENGER), None

    async def swap(self, state: ProjectState, role: str = CHAMPION, *, following: bool = False) -> dict:
        """Load the version `role` should serve and swap it in; the old one keeps serving unless this succeeds.

        For the challenger, none (or the champion's version) unloads it: the endpoint runs none. When
        `following` the records (not asked by /reload), a version that failed to load for the same record is
        not tried again, and without a record the alias is read only for the role's first load."""
        held = state.roles[role]
        async with state.lock:  # one load per project at a time; requests never take this lock
            current = held.model
            resolved = await self.wanted(state, role, follow_alias=not following or not held.started)
            if resolved is None:  # no record: an alias moved by hand waits for `<p>/deployment` (or /reload)
                return {"changed": False, "model": current.describe() if current else None, "previous": None}
            version, stamp = resolved
            held.started = True
            if role == CHALLENGER:
                if self.config.challenger_settings is not None:  # mode and traffic may have changed in project.yaml
                    state.setting = await asyncio.to_thread(self.config.challenger_settings, state.spec.name)
                if version is None or (state.model is not None and version == state.model.version):
                    held.model, held.error = None, None
                    held.status = ("no challenger" if version is None
                                   else f"the challenger names the champion (v{version})")
                    if current is not None:
                        log.info(f"{state.spec.name}: stopped running challenger {current.uri}")
                    return {"changed": current is not None, "model": None,
                            "previous": current.describe() if current else None}
            if current is not None and current.version == version:
                held.error = None
                if role == CHALLENGER:
                    held.status = f"running in {state.setting.mode}"  # the mode may have changed
                return {"changed": False, "model": current.describe(), "previous": None}
            if following and held.refused == (version, stamp):
                return {"changed": False, "model": current.describe() if current else None, "previous": None}
            try:
                loaded = await asyncio.to_thread(load_version, self.config.tracking_uri, state.model_name, version,
                                                 alias=role)
            except (ChampionLoadFailed, RegistryUnavailable) as exc:
                held.failed_loads += 1
                held.error = LoadError(version, str(exc), dt.datetime.now(dt.timezone.utc), stamp)
                if isinstance(exc, ChampionLoadFailed):  # an outage is tried again; a refusal waits for a new record
                    held.refused = (version, stamp)
                raise
            held.refused, held.error = None, None
            held.loads += 1
            # The swap: one reference assignment.
            held.model, held.status = loaded, "serving" if role == CHAMPION else f"running in {state.setting.mode}"
            log.info(f"{state.spec.name}: {role} is now {loaded.uri}"
                     + (f" (was version {current.version})" if current else ""))
            return {"changed": True, "model": loaded.describe(), "previous": current.describe() if current else None}

    async def sync(self, state: ProjectState) -> bool:
        """Serve what the records (or aliases) name for every role; never raises. True when something changed."""
        changed = False
        for role in ROLES:
            held = state.roles[role]
            serves_none = held.model is None
            try:
                changed |= (await self.swap(state, role, following=True))["changed"]
            except NoChampion as exc:
                held.started = True  # MLflow answered: from now on only a serving record moves it
                held.status, held.settled = f"no model deployed: {exc}", True
            except (ChampionLoadFailed, ProjectConfigError) as exc:
                if serves_none:
                    held.status, held.settled = f"{role} failed to load: {exc}", True
                held.show_load_error(exc)  # shown by /health, as a reload's
                log.error(f"{state.spec.name}: {role} failed to load: {exc}")
                changed = True  # the failure is news for the deployer waiting on the heartbeat
            except RegistryUnavailable as exc:
                if serves_none:
                    held.status = f"waiting for MLflow: {exc}"
        return changed
