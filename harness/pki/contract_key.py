"""The pieces of an ISO 15118-2 CertificateInstallationRes: new contract key + chain, and the contract
private key encrypted for the EV.

ISO 15118-2:2014 scheme (the CertificateInstallationRes / CertificateUpdateRes elements
DHpublickey and ContractSignatureEncryptedPrivateKey; requirements V2G2-818 ff. as cited by the open
implementations RISE V2G and Josev — the ISO text itself was not available while writing this):

1. the MO makes an ephemeral secp256r1 key pair; DHpublickey = its public point, uncompressed (65 B);
2. Z = ECDH(ephemeral private key, public key of the EV's OEM provisioning certificate), the
   32-byte x coordinate;
3. session key = NIST SP 800-56A single-step ConcatKDF with SHA-256, 128 bits of output,
   OtherInfo = AlgorithmID 0x01 ‖ PartyUInfo "U" ‖ PartyVInfo "V";
4. ContractSignatureEncryptedPrivateKey = IV (16 random bytes) ‖ AES-128-CBC(session key, IV,
   the 32-byte big-endian contract private key), no padding (48 bytes in all).

The EV reverses it with its OEM provisioning private key (`decrypt_contract_key_iso2`).
ISO 15118-20 (ECDHE on secp521r1 / X448, AES-GCM-256 with AAD = PCID ‖ SKI, [V2G20-2491..2502])
is NOT implemented here; the -20 flavours raise NotImplementedError.
The signature of the response body by the CPS leaf needs the EXI encoding of the message, which
lives with the ISO 15118 emulators, not here: `InstallationResPieces.cps_key` is handed over for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from .v2g import V2GKey, V2GPki, issue_contract_certificate

OTHER_INFO = b"\x01" + b"U" + b"V"     # AlgorithmID ‖ PartyUInfo ‖ PartyVInfo
KEY_BYTES = 32                          # secp256r1 private scalar


@dataclass(frozen=True)
class EncryptedContractKey:
    dh_public_key: bytes            # DHpublickey: uncompressed secp256r1 point, 65 bytes
    encrypted_private_key: bytes    # ContractSignatureEncryptedPrivateKey: IV ‖ ciphertext, 48 bytes


def _session_key(shared_secret: bytes) -> bytes:
    return ConcatKDFHash(algorithm=hashes.SHA256(), length=16, otherinfo=OTHER_INFO).derive(shared_secret)


def encrypt_contract_key_iso2(contract_key: ec.EllipticCurvePrivateKey,
                              oem_prov_public: ec.EllipticCurvePublicKey) -> EncryptedContractKey:
    """Encrypt `contract_key` for the EV holding the OEM provisioning key (ISO 15118-2 scheme above)."""
    for k, what in ((contract_key, "contract key"), (oem_prov_public, "OEM provisioning key")):
        if not isinstance(k, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or k.curve.name != "secp256r1":
            raise ValueError(f"ISO 15118-2 key encryption needs a secp256r1 {what}")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    session = _session_key(ephemeral.exchange(ec.ECDH(), oem_prov_public))
    iv = os.urandom(16)
    plain = contract_key.private_numbers().private_value.to_bytes(KEY_BYTES, "big")
    enc = Cipher(algorithms.AES(session), modes.CBC(iv)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    dh = ephemeral.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return EncryptedContractKey(dh_public_key=dh, encrypted_private_key=iv + ct)


def decrypt_contract_key_iso2(encrypted_private_key: bytes, dh_public_key: bytes,
                              oem_prov_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    """What the EV does: recover the contract private key with its OEM provisioning private key."""
    if len(encrypted_private_key) != 16 + KEY_BYTES:
        raise ValueError(f"ContractSignatureEncryptedPrivateKey must be 48 bytes, got {len(encrypted_private_key)}")
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public_key)
    session = _session_key(oem_prov_key.exchange(ec.ECDH(), peer))
    dec = Cipher(algorithms.AES(session), modes.CBC(encrypted_private_key[:16])).decryptor()
    scalar = int.from_bytes(dec.update(encrypted_private_key[16:]) + dec.finalize(), "big")
    return ec.derive_private_key(scalar, ec.SECP256R1())


@dataclass(frozen=True)
class InstallationResPieces:
    emaid: str
    contract_key: V2GKey
    contract_chain: list[x509.Certificate]          # ContractSignatureCertChain: new leaf, MO Sub-CA 2, Sub-CA 1
    sa_provisioning_chain: list[x509.Certificate]   # SAProvisioningCertificateChain: CPS leaf, CPS Sub-CA 2, 1
    dh_public_key: bytes
    encrypted_private_key: bytes
    cps_key: V2GKey                                  # signs the response body (done by the EXI layer)


def installation_res_pieces(pki: V2GPki, emaid: str | None = None,
                            oem_prov_public: ec.EllipticCurvePublicKey | None = None) -> InstallationResPieces:
    """Everything a CertificateInstallationRes carries, for the EV owning `oem_prov_public` (default:
    the PKI's own OEM provisioning certificate). ISO 15118-2 (flavour iso2) only."""
    if pki.flavour != "iso2":
        raise NotImplementedError("contract key encryption is implemented for ISO 15118-2 (flavour iso2) only; "
                                  "ISO 15118-20 uses ECDHE + AES-GCM-256 [V2G20-2491..2502]")
    key, cert = issue_contract_certificate(pki, emaid)
    oem_pub = oem_prov_public or pki.certs["oem_prov"].public_key()
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(oem_pub, ec.EllipticCurvePublicKey):
        raise ValueError("ISO 15118-2 needs secp256r1 keys")
    enc = encrypt_contract_key_iso2(key, oem_pub)
    return InstallationResPieces(
        emaid=emaid or pki.emaid, contract_key=key,
        contract_chain=[cert, pki.certs["mo_subca2"], pki.certs["mo_subca1"]],
        sa_provisioning_chain=[pki.certs["cps"], pki.certs["cps_subca2"], pki.certs["cps_subca1"]],
        dh_public_key=enc.dh_public_key, encrypted_private_key=enc.encrypted_private_key, cps_key=pki.keys["cps"])
