"""What the endpoint holds per project: one `Role` per role (champion, challenger), each with the immutable
`ServedModel` it serves, its status and its latest failed load; the challenger's mode and traffic; the lock that
keeps one load per project at a time (requests never take it)."""

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from mining_platform.serving.online_features import OnlineFeatures
from mining_platform.serving.payload import BadRequest
from mining_platform.serving.served_model import ServedModel
from mining_platform.spec import ProjectSpec
from mining_platform.spec.names import CHALLENGER, CHAMPION, ROLES
from mining_platform.spec.project import ChallengerConfig
from mining_platform.spec.replicas import LoadError, Served


@dataclass
class Role:
    """One role of a project: what it serves, and how its loads went."""

    name: str
    model: ServedModel | None = None
    status: str = "loading"
    last_reload_error: str | None = None  # the latest failed reload or sync load, until one succeeds (/health)
    error: LoadError | None = None  # the latest failed load, reported in the heartbeat (cleared when one loads)
    refused: tuple | None = None  # (version, record stamp) that failed: not tried again until the record changes
    started: bool = False  # its first load was tried (from then on, only a serving record moves it)
    settled: bool = False  # its first load ended without a model to serve: none deployed, or it cannot be served
    loads: int = 0  # versions loaded and swapped in (/metrics)
    failed_loads: int = 0  # loads that failed: the role kept what it served (/metrics)

    @property
    def ready(self) -> bool:
        """Whether this role is past loading (/ready): it serves a model, or there is none it could serve."""
        return self.model is not None or self.settled

    def show_load_error(self, exc: Exception | None) -> None:
        """The role's latest failed reload or sync load, as /health shows it (None: the last one succeeded)."""
        self.last_reload_error = None if exc is None else f"{dt.datetime.now(dt.timezone.utc).isoformat()}: {exc}"


@dataclass
class ProjectState:
    spec: ProjectSpec
    online: OnlineFeatures
    setting: ChallengerConfig | None = None  # `serving.challenger`: mode and traffic (re-read on a challenger reload)
    roles: dict[str, Role] = field(default_factory=lambda: {role: Role(role) for role in ROLES})
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        if self.setting is None:
            self.setting = self.spec.project.serving.challenger

    @property
    def model_name(self) -> str:
        return self.spec.project.model.name

    @property
    def model(self) -> ServedModel | None:
        """The champion served now: a request takes this reference once and finishes on it."""
        return self.roles[CHAMPION].model

    @property
    def challenger(self) -> ServedModel | None:
        return self.roles[CHALLENGER].model

    def serving(self) -> ServedModel:
        """The champion a request is answered with; 503 when none is served yet."""
        model = self.model
        if model is None:
            raise BadRequest(503, f"project {self.spec.name!r} serves no model yet ({self.roles[CHAMPION].status}); "
                                  f"materialise {self.spec.name}/deployment")
        return model

    def live_challenger(self, champion: ServedModel) -> ServedModel | None:
        """The challenger to run next to `champion` (none when it is the same version, e.g. just promoted)."""
        challenger = self.challenger
        return None if challenger is None or challenger.version == champion.version else challenger

    def describe_challenger(self) -> dict | None:
        challenger = self.challenger
        if challenger is None or (self.model is not None and challenger.version == self.model.version):
            return None
        return {**challenger.describe(), "mode": self.setting.mode, "traffic": self.setting.traffic}

    def served(self) -> dict[str, Served]:
        model, challenger = self.model, self.challenger
        served = {CHAMPION: Served(model.version, model.loaded_at.isoformat())} if model else {}
        if challenger is not None and (model is None or challenger.version != model.version):
            served[CHALLENGER] = Served(challenger.version, challenger.loaded_at.isoformat())
        return served

    def errors(self) -> dict[str, LoadError]:
        """Each role's latest failed load, for the heartbeat."""
        return {name: role.error for name, role in self.roles.items() if role.error is not None}


def state_of(states: dict[str, ProjectState], unavailable: dict[str, str], name: str) -> ProjectState:
    """A served project's state; 503 for a project whose files do not load, 404 for an unknown one."""
    if name in unavailable:
        raise BadRequest(503, f"project {name!r} is not served: its files do not load: {unavailable[name]}")
    state = states.get(name)
    if state is None:
        raise BadRequest(404, f"unknown project {name!r}; known: {', '.join(sorted(states))}")
    return state
