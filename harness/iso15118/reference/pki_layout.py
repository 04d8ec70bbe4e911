"""Our V2G PKI (`harness.pki.v2g.make_v2g_pki`) in the file layout the `iso15118` package reads
from its PKI_PATH (certs/*.der|pem, private_keys/*.key and an empty *Password.txt per key,
which the package reads as "no password"), so its SECC/EVCC trust and present our chains."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

REFERENCE_NAMES = {
    "contract": "contractLeaf", "mo_subca2": "moSubCA2", "mo_subca1": "moSubCA1", "mo_root": "moRootCA",
    "secc": "seccLeaf", "cpo_subca2": "cpoSubCA2", "cpo_subca1": "cpoSubCA1", "v2g_root": "v2gRootCA",
    "cps": "cpsLeaf", "cps_subca2": "cpsSubCA2", "cps_subca1": "cpsSubCA1",
    "oem_prov": "oemLeaf", "oem_subca2": "oemSubCA2", "oem_subca1": "oemSubCA1", "oem_root": "oemRootCA"}
PASSWORD_FILES = ("seccLeafPassword.txt", "oemLeafPassword.txt", "contractLeafPassword.txt",
                   "cpsLeafPassword.txt", "moSubCA2LeafPassword.txt")


def reference_pki_layout(pki, dest: Path) -> Path:
    """Our make_v2g_pki output in the file layout the iso15118 package reads from PKI_PATH."""
    certs, keys = dest / "iso15118_2" / "certs", dest / "iso15118_2" / "private_keys"
    certs.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    for ours, theirs in REFERENCE_NAMES.items():
        cert = pki.certs[ours]
        (certs / f"{theirs}Cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
        (certs / f"{theirs}Cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (keys / f"{theirs}.key").write_bytes(pki.key_paths[ours].read_bytes())
    (certs / "cpoCertChain.pem").write_bytes(pki.chain_paths["secc"].read_bytes())   # leaf + Sub-CAs
    (certs / "oemCertChain.pem").write_bytes(pki.chain_paths["oem_prov"].read_bytes())
    for name in PASSWORD_FILES:    # empty password file: the package loads the key without one
        (keys / name).write_text("")
    return dest
