"""Byte equality with the reference jar over tests/data/exi_corpus/*.json.

Each file: {"schema", "msg" (canonical dict, bytes as {"$hex": ...}), "exi_hex"} written by
scripts/make_exi_corpus.py through the iso15118 package's EXICodec.jar.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.iso15118.schemas import SchemasUnavailable, schemas_dir

CORPUS = Path(__file__).parent / "data" / "exi_corpus"
FILES = sorted(CORPUS.glob("*.json")) if CORPUS.is_dir() else []


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"$hex"}:
            return bytes.fromhex(value["$hex"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


@pytest.fixture(scope="module", autouse=True)
def _schemas_available():
    try:
        schemas_dir(download=False)
    except SchemasUnavailable as exc:
        pytest.skip(f"V2G schemas not cached (fill once: python -m harness.iso15118.schemas): {exc}")


@pytest.mark.skipif(not FILES, reason="no reference corpus in tests/data/exi_corpus")
@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_corpus_message_is_byte_exact(path: Path) -> None:
    from harness.iso15118.exi import EncodeError, codec_for

    case = json.loads(path.read_text())
    codec = codec_for(case["schema"])
    msg = _from_json(case["msg"])
    expected = bytes.fromhex(case["exi_hex"])
    try:
        data = codec.encode(msg)
    except EncodeError as exc:
        # The jar encodes out-of-facet values as a non-strict deviation; we reject them.
        pytest.xfail(f"corpus message violates the schema: {exc}")
    assert data.hex() == expected.hex()
    assert codec.decode(expected) == msg
