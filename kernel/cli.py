"""`brahmahub`: serve the app, manage migrations, print the version."""

from __future__ import annotations

import argparse
import logging.config
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

from kernel.config import ConfigError, Settings
from kernel.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from kernel.logs import logging_config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        from handlers.health import app_version

        print(app_version())
        return 0
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            settings = replace(
                settings, host=args.host or settings.host, port=args.port or settings.port
            )
        logging.config.dictConfig(logging_config(settings.log_level))
        return int(args.run(settings, args) or 0)
    except (ConfigError, EmbeddedPostgresError) as exc:
        print(f"brahmahub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from kernel.server import serve

    serve(settings)
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from kernel import migrate

    with _database(settings) as dsn:
        if args.action == "apply":
            applied = migrate.apply(dsn)
            print("applied: " + ", ".join(applied) if applied else "already up to date")
        elif args.action == "list":
            for item in migrate.status(dsn):
                print(f"{'A' if item.applied else 'U'}  {item.id}")
        else:
            rolled_back = migrate.rollback_latest(dsn)
            print(f"rolled back: {rolled_back}" if rolled_back else "nothing to roll back")
    return 0


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or the embedded server for the duration of the command."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.home / "pg", port=settings.embedded_pg_port)
    try:
        yield server.start()
    finally:
        server.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brahmahub",
        description="BrahmaHub: a self-hosted catalog for generative-AI training media. "
        "Settings come from the environment and .env (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the API, media and web app",
        description="Serve BrahmaHub over HTTP. Starts the embedded PostgreSQL when "
        "DATABASE_URL is unset and applies pending migrations first. Ctrl-C stops it cleanly.",
    )
    serve.add_argument("--host", help="address to bind (default: HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT, 8000)")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser(
        "migrate",
        help="apply, list or roll back database migrations",
        description="Database migrations from sql/, run under a PostgreSQL advisory lock.",
    )
    migrate.add_argument(
        "action",
        nargs="?",
        default="apply",
        choices=("apply", "list", "rollback"),
        help="apply pending migrations (default), list them with A(pplied)/U(napplied), "
        "or roll back the latest applied one",
    )
    migrate.set_defaults(run=_migrate)

    commands.add_parser("version", help="print the version", description="Print the version.")
    return parser


if __name__ == "__main__":
    sys.exit(main())
