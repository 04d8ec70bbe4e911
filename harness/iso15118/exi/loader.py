"""Build (or load from the pickle cache) the compiled grammars of one schema."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import threading
from pathlib import Path

from harness.iso15118 import schemas
from harness.iso15118.exi.codec import Codec
from harness.iso15118.exi.grammar import Builder, Compiled
from harness.iso15118.exi.xsd import Schema

_CODE_FILES = ("xsd.py", "datatypes.py", "grammar.py", "loader.py")
_lock = threading.Lock()
_codecs: dict[str, Codec] = {}


def codec_for(name: str) -> Codec:
    """The codec of one schema name (see schemas.ENTRY_FILES); built once per process."""
    with _lock:
        codec = _codecs.get(name)
        if codec is None:
            codec = _codecs[name] = Codec(name, _compiled(name))
        return codec


def _compiled(name: str) -> Compiled:
    entry = schemas.schema_file(name)
    key = _cache_key(entry)
    cache = Path(schemas.cache_dir()).parent / "grammars" / f"{name}-{key}.pickle"
    try:
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        pass
    compiled = Builder(Schema(str(entry))).compile()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(compiled, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only cache only costs the rebuild
    return compiled


def _cache_key(entry: Path) -> str:
    """Hash of every XSD next to the entry (and xmldsig) plus this package's grammar code."""
    h = hashlib.sha256()
    root = entry.parent
    files = sorted(root.glob("*.xsd")) + sorted(root.parent.glob("xmldsig-core-schema.xsd"))
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    here = Path(__file__).parent
    for name in _CODE_FILES:
        h.update((here / name).read_bytes())
    h.update(entry.name.encode())
    return h.hexdigest()[:16]
