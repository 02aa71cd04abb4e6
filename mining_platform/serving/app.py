"""The scoring endpoint's FastAPI app.

Serving models arrives with the deployment work; until a project has a champion
the endpoint reports, per project, that no model is deployed yet.
"""

import datetime as dt

from fastapi import FastAPI, HTTPException

from mining_platform.project import ProjectConfig


def create_app(projects: list[ProjectConfig]) -> FastAPI:
    by_name = {p.name: p for p in projects}
    started_at = dt.datetime.now(dt.timezone.utc)
    app = FastAPI(
        title="mining-platform scoring endpoint",
        description="Scores rows or entities with each project's champion model.",
    )

    def _project(name: str) -> ProjectConfig:
        if name not in by_name:
            raise HTTPException(status_code=404, detail=f"unknown project {name!r}; known: {sorted(by_name)}")
        return by_name[name]

    @app.get("/health")
    def health() -> dict:
        """Liveness, and which project has a model deployed."""
        return {
            "status": "ok",
            "started_at": started_at.isoformat(),
            "projects": {name: {"model": p.model.name, "deployed": None} for name, p in by_name.items()},
        }

    @app.get("/v1/{project}/version")
    def version(project: str) -> dict:
        """The deployed model's name and version."""
        config = _project(project)
        raise HTTPException(
            status_code=404,
            detail=f"no model is deployed for project {project!r} yet "
            f"(registered model {config.model.name!r} has no champion loaded)",
        )

    return app
