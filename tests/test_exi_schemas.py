"""Where the V2G XSDs come from: env override, cache folder, extraction from the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from harness.iso15118 import schemas


def _fake_wheel(path: Path) -> Path:
    wheel = path / "iso15118-0.31.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for entry in sorted(set(schemas.ENTRY_FILES.values()) | {"xmldsig-core-schema.xsd"}):
            zf.writestr(f"iso15118/shared/schemas/{entry}", "<schema/>")
        zf.writestr("iso15118/shared/EXICodec.jar", b"not extracted")
        zf.writestr("iso15118/shared/schemas/../../evil.xsd", "<schema/>")
    return wheel


def test_env_var_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schemas.extract_schemas(_fake_wheel(tmp_path), tmp_path / "s")
    monkeypatch.setenv(schemas.ENV_VAR, str(tmp_path / "s"))
    assert schemas.schemas_dir() == tmp_path / "s"
    assert schemas.schema_file("iso2") == tmp_path / "s" / "iso15118_2" / "V2G_CI_MsgDef.xsd"


def test_env_var_folder_without_schemas_is_a_clear_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(schemas.ENV_VAR, str(tmp_path))
    with pytest.raises(schemas.SchemasUnavailable, match=schemas.ENV_VAR):
        schemas.schemas_dir()


def test_cache_honours_xdg_and_is_filled_from_the_wheel(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(schemas.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    target = schemas.cache_dir()
    assert target == tmp_path / "xdg" / "charger-harness" / "v2g-schemas" / schemas.ISO15118_VERSION
    with pytest.raises(schemas.SchemasUnavailable, match="not cached"):
        schemas.schemas_dir(download=False)
    schemas.extract_schemas(_fake_wheel(tmp_path), target)
    assert schemas.schemas_dir(download=False) == target
    assert not (target / "EXICodec.jar").exists()
    assert not (tmp_path / "xdg" / "charger-harness" / "evil.xsd").exists()


def test_unknown_schema_name() -> None:
    with pytest.raises(KeyError, match="unknown schema 'iso3'"):
        schemas.schema_file("iso3", download=False)
