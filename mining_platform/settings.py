"""The platform's environment variables and their defaults (the embedded dev stack).

Plain functions read them here; Dagster resources read them through `dg.EnvVar`
(`resources`), so the UI shows where a value came from.
"""

import os
import secrets
import sys
from pathlib import Path

DEFAULTS: dict[str, str] = {
    "MINING_HOME": ".mining",
    "MINING_PROJECTS_DIR": "projects",
    "MINING_MONGO_URI": "mongodb://127.0.0.1:27027/?directConnection=true",
    "MINING_MONGO_DB": "mining",
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
    "MINING_ENDPOINT_URL": "http://127.0.0.1:8080",
    "MINING_DAGSTER_PORT": "3000",
    "MINING_DAGSTER_URL": "",  # the Dagster UI's address for links in alerts; empty: http://127.0.0.1:<port>
    "MINING_PREDICTION_LOG_SAMPLE_RATE": "0.1",
    "MINING_PREDICTION_LOG_RETENTION_DAYS": "30",  # a TTL index removes older records
    "MINING_PREDICTION_LOG_MAX_ROWS": "100",  # rows of one request logged at most
    "MINING_MAX_BATCH": "1000",
    "MINING_STEP_RETRIES": "3",
    "MINING_STEP_RETRY_DELAY_SECONDS": "15",
    # Every endpoint replica syncs with the serving records and writes its heartbeat this often.
    "MINING_ENDPOINT_HEARTBEAT_SECONDS": "5",
    # `on`: the endpoint counts requests and exports them at /metrics; `off`: it counts nothing (no /metrics).
    "MINING_ENDPOINT_METRICS": "on",
    # Events dated later than now plus this are ignored by the watermark (a clock or parse error in one row must not
    # mature every label window) and refused by `import`.
    "MINING_FUTURE_TOLERANCE_MINUTES": "60",
    # How long `<p>/deployment` waits for every live replica to serve the new version.
    "MINING_DEPLOY_CONVERGE_SECONDS": "120",
}


def setting(name: str) -> str:
    """The value of a platform variable now: the environment, else its default."""
    return os.environ.get(name) or DEFAULTS[name]


def int_setting(name: str, *, minimum: int = 0) -> int:
    """An integer variable; a value that is not one names the variable."""
    raw = setting(name)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def mining_home() -> Path:
    return Path(setting("MINING_HOME")).resolve()


def projects_dir() -> Path:
    return Path(setting("MINING_PROJECTS_DIR")).resolve()


def dagster_url() -> str:
    """The Dagster UI's address (MINING_DAGSTER_URL), by default the dev stack's on loopback; no trailing slash."""
    return (setting("MINING_DAGSTER_URL") or f"http://127.0.0.1:{setting('MINING_DAGSTER_PORT')}").rstrip("/")


def console_script(name: str) -> str:
    """A console script of this interpreter's environment (the venv `make install` built)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `make install` (the dev extra provides the dev tools)")
    return str(path)


PRIVATE = 0o077  # the group and other permission bits: none under MINING_HOME


def private_home(home: Path) -> list[str]:
    """Create `home` (0700) or tighten an existing one: every folder under it 0700 and every file 0600 at most
    (the embedded MongoDB's files, MLflow's database and artifacts, Dagster's home, logins and tokens hold every
    project's data, readable around MongoDB's authentication otherwise). Returns a note per path tightened.
    (`make dev` also sets its umask to 077, so what the services it starts create later is private too.)"""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    tightened = []
    for path in [home, *home.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if mode & PRIVATE:
            path.chmod(mode & ~PRIVATE)
            tightened.append(f"{path}: {mode:04o} -> {mode & ~PRIVATE:04o}")
    return tightened


def ensure_admin_token(home: Path) -> str:
    """The endpoint's admin bearer token: generated once into `<home>/admin_token` (mode 0600)."""
    path = home / "admin_token"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write a private temp file, then link it into place: the token is complete
        # before anyone can read it, and of two processes starting together the
        # first link wins and both return that token.
        tmp = home / f".admin_token.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def admin_token() -> str:
    """`MINING_ADMIN_TOKEN` if set, else the token file under `MINING_HOME` (created if missing)."""
    return os.environ.get("MINING_ADMIN_TOKEN") or ensure_admin_token(mining_home())
