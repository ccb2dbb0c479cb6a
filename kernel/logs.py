"""One logging set-up for the app, uvicorn and the CLI."""

from __future__ import annotations

import logging
from typing import Any

from kernel.config import ConfigError
from kernel.embedded_pg import EmbeddedPostgresError

# Failures whose message already says everything: logged as one line, without a traceback.
EXPLAINED_ERRORS: tuple[type[BaseException], ...] = (ConfigError, EmbeddedPostgresError)


class OneLineForExplainedErrors(logging.Filter):
    """Ours explain themselves: log them as their message, without the traceback.

    A failed lifespan start reaches uvicorn's log as traceback text (Starlette formats it),
    so the text's last line is matched too, not only `exc_info`.
    """

    _prefixes = tuple(f"{e.__module__}.{e.__qualname__}: " for e in EXPLAINED_ERRORS)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], EXPLAINED_ERRORS):
            record.msg, record.args = "%s", (record.exc_info[1],)
            record.exc_info = None
        elif isinstance(record.msg, str) and record.msg.startswith("Traceback"):
            last = record.msg.rstrip().rsplit("\n", 1)[-1]
            for prefix in self._prefixes:
                if last.startswith(prefix):
                    record.msg, record.args = "%s", (last.removeprefix(prefix),)
        return True


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """dictConfig for everything, uvicorn's loggers included (pass as uvicorn's log_config)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"explained": {"()": OneLineForExplainedErrors}},
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["explained"],
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "yoyo": {"level": "WARNING"},  # one INFO line per SQL statement otherwise
            # Access logs would double the cost of every thumbnail; Traefik keeps its own.
            "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
    }
