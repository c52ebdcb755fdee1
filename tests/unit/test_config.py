from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server._config import ConfigError, load_settings
from tests._servers import REPO


def test_example_config_loads_and_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDSTITCH_HASH_SECRET", "from-env")
    settings = load_settings(REPO / "idstitch.example.toml", data_dir=tmp_path)
    namespaces = {ns.name: ns for ns in settings.linkage.namespaces}
    assert namespaces["cookie"].cap == 30 and namespaces["idfa"].normalise == "lower"
    assert namespaces["loyalty_card"].unique and namespaces["email"].pii
    assert "shared-kiosk" in settings.linkage.blocked_values and "undefined" in settings.linkage.blocked_values
    assert settings.linkage.hash_secret == b"from-env"
    assert settings.server.data_dir == tmp_path


def test_hash_secret_is_created_once_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IDSTITCH_HASH_SECRET", raising=False)
    first = load_settings(None, data_dir=tmp_path).linkage.hash_secret
    second = load_settings(None, data_dir=tmp_path).linkage.hash_secret
    assert first == second and len(first) == 64
    assert (tmp_path / "hash-secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[server]\nprot = 1\n", "[server]"),
        ("[identity]\nmax_signal = 3\n", "[identity]"),
        ("[namespaces.x]\nnormalise = 'upper'\n", "[namespaces.x]"),
        ("[namespaces.x]\nuniq = true\n", "[namespaces.x]"),
        ("[server\n", "config.toml"),
    ],
)
def test_config_errors_say_where(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, data_dir=tmp_path)
    assert where in str(caught.value)


def test_cli_reports_a_config_error_without_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[server]\nprot = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--config", str(path), "--data-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        *(("event_id_window_seconds", window) for window in ("inf", "1e300", "0", "-5")),
        *(("max_concurrent_syncs", turns) for turns in ("0", "-1", "1.5", '"two"')),
    ],
)
def test_a_limit_out_of_its_range_is_a_config_error_naming_it(tmp_path: Path, key: str, value: str) -> None:
    config = tmp_path / "idstitch.toml"
    config.write_text(f"[identity]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=key):
        load_settings(config, data_dir=tmp_path / "data")
