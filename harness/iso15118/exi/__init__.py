"""Schema-informed EXI codec for the V2G schemas, byte-compatible with the iso15118 reference jar.

    from harness.iso15118.exi import codec_for
    c = codec_for("iso2")
    data = c.encode({"V2G_Message": {...}})
    msg = c.decode(data)

Names: "app", "din", "iso2", "iso20", "iso20_dc", "iso20_ac" (also "iso20_acdp", "iso20_wpt").
Compiled grammars are cached (pickled) next to the schemas, keyed by schema + code hash.
"""

from __future__ import annotations

from harness.iso15118.exi.bits import DecodeError
from harness.iso15118.exi.codec import Codec, EncodeError
from harness.iso15118.exi.loader import codec_for

__all__ = ["Codec", "DecodeError", "EncodeError", "codec_for"]
