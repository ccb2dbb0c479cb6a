"""Settings: read once from the environment (and `.env`), frozen, validated at start-up.

Every field here is documented in the README's configuration table; a test checks that.
A bad value raises `ConfigError` whose message names the variable, so start-up can stop
with one clear line instead of a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting has a value BrahmaHub cannot use; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, defaulted settings. Build with `Settings.from_env()`; tests pass fields directly."""

    # PostgreSQL DSN; unset means "start the embedded PostgreSQL in BRAHMAHUB_HOME".
    database_url: str | None = None
    # Where the embedded database and other local state live.
    home: Path = field(default_factory=lambda: Path("var").resolve())
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_min: int = 2
    db_pool_max: int = 10
    # Filesystem roots that /media may serve from (originals on the NAS).
    media_root_paths: tuple[Path, ...] = ()
    # Where generated proxies and thumbnails are written; also served by /media.
    proxy_dir: Path = field(default_factory=lambda: Path("var/proxies").resolve())
    # Folder whose sub-folders are dataset directories; None turns the feature off.
    datasets_root: Path | None = None
    # Origins allowed to call the API cross-origin; empty means same origin only.
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Also listen on 127.0.0.1:<port> with the embedded database (0 = unix socket only).
    embedded_pg_port: int = 0

    @property
    def media_roots(self) -> tuple[Path, ...]:
        """Every root /media serves from: the configured roots, then the proxy directory."""
        return (*self.media_root_paths, self.proxy_dir)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, dotenv_path: str | Path = ".env"
    ) -> Settings:
        """Read settings from `environ` (default: `.env` overlaid by the process environment)."""
        if environ is None:
            file_values = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
            environ = {**file_values, **os.environ}
        env = _Env(environ)
        home = env.path("BRAHMAHUB_HOME", Path("var"))
        return cls(
            database_url=env.text("DATABASE_URL") or None,
            home=home,
            host=env.text("HOST", "127.0.0.1"),
            port=env.integer("PORT", 8000, low=1, high=65535),
            db_pool_min=env.integer("DB_POOL_MIN", 2, low=1, high=1000),
            db_pool_max=env.integer("DB_POOL_MAX", 10, low=1, high=1000),
            media_root_paths=env.paths("MEDIA_ROOT_PATHS"),
            proxy_dir=env.path("PROXY_DIR", home / "proxies"),
            datasets_root=env.optional_path("DATASETS_ROOT"),
            cors_origins=env.items("CORS_ORIGINS"),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            embedded_pg_port=env.integer("EMBEDDED_PG_PORT", 0, low=0, high=65535),
        )._checked()

    def _checked(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ConfigError(
                f"DB_POOL_MIN ({self.db_pool_min}) must not exceed DB_POOL_MAX ({self.db_pool_max})"
            )
        return self


class _Env:
    """Typed reads from a mapping; every error names the variable and the bad value."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str = "") -> str:
        return self._environ.get(name, "").strip() or default

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).upper()
        if value not in choices:
            raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
        return value

    def items(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.text(name).split(",") if part.strip())

    def path(self, name: str, default: Path) -> Path:
        return self.optional_path(name) or default.resolve()

    def optional_path(self, name: str) -> Path | None:
        raw = self.text(name)
        if not raw:
            return None
        if "\x00" in raw:
            raise ConfigError(f"{name} contains a NUL byte")
        return Path(raw).expanduser().resolve()

    def paths(self, name: str) -> tuple[Path, ...]:
        paths = []
        for raw in self.items(name):
            if "\x00" in raw:
                raise ConfigError(f"{name} contains a NUL byte")
            paths.append(Path(raw).expanduser().resolve())
        return tuple(paths)
