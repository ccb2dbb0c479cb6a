"""Settings: typed defaults, one clear error per bad value, and every variable in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel.config import ConfigError, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


class RecordingEnv(dict[str, str]):
    """An environment that remembers every variable Settings asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.database_url is None
    assert settings.home == tmp_path / "var"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.db_pool_min, settings.db_pool_max) == (2, 10)
    assert settings.media_root_paths == ()
    assert settings.proxy_dir == tmp_path / "var" / "proxies"
    assert settings.datasets_root is None
    assert settings.cors_origins == ()
    assert settings.log_level == "INFO"


def test_values_are_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@db/x",
            "BRAHMAHUB_HOME": str(tmp_path / "state"),
            "PORT": "9000",
            "MEDIA_ROOT_PATHS": f" {tmp_path}/a , {tmp_path}/b ,",
            "CORS_ORIGINS": "https://a.example,https://b.example",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.port == 9000
    assert settings.media_root_paths == (tmp_path / "a", tmp_path / "b")
    assert settings.proxy_dir == tmp_path / "state" / "proxies"
    assert settings.media_roots == (tmp_path / "a", tmp_path / "b", tmp_path / "state" / "proxies")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.log_level == "DEBUG"


def test_dotenv_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("PORT=8123\nHOST=0.0.0.0\n")
    monkeypatch.setenv("HOST", "127.0.0.2")
    monkeypatch.delenv("PORT", raising=False)
    settings = Settings.from_env(dotenv_path=tmp_path / ".env")
    assert (settings.host, settings.port) == ("127.0.0.2", 8123)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "abc"}, "PORT='abc' is not a whole number"),
        ({"PORT": "70000"}, "PORT=70000 is out of range (1..65535)"),
        ({"DB_POOL_MAX": "0"}, "DB_POOL_MAX=0 is out of range (1..1000)"),
        (
            {"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"},
            "DB_POOL_MIN (5) must not exceed DB_POOL_MAX (2)",
        ),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD' must be one of DEBUG, INFO, WARNING"),
        ({"MEDIA_ROOT_PATHS": "/a\x00b"}, "MEDIA_ROOT_PATHS contains a NUL byte"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value).startswith(message)


def test_every_setting_is_documented_in_the_readme() -> None:
    env = RecordingEnv()
    Settings.from_env(env)
    table = {m.group(1) for m in re.finditer(r"^\| `([A-Z_]+)` \|", README.read_text(), re.M)}
    assert env.asked, "Settings read no variables"
    assert env.asked <= table, f"not in the README's table: {sorted(env.asked - table)}"
