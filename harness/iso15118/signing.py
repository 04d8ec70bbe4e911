"""XML signatures over EXI, as ISO 15118 uses them (-2 Annex J / §7.9.2.4, -20 §7.9.x / Annex):

1. every signed element (AuthorizationReq, MeteringReceiptReq, -20 PnC_AReqAuthorizationMode,
   ...) carries an Id attribute and is EXI-encoded *as a fragment* of its message schema;
   its digest goes into a Reference (URI "#<Id>") of SignedInfo;
2. SignedInfo is EXI-encoded as a fragment of the xmldsig schema and signed; the
   SignatureValue is the raw r‖s of the ECDSA signature (each half as long as the curve's
   order), not DER; Ed448 signatures are used as they are (114 bytes);
3. the Signature element goes into the message header.

Algorithms by key type:
  secp256r1 (ISO 15118-2):  ecdsa-sha256, digest sha256
  secp521r1 (ISO 15118-20): ecdsa-sha512, digest sha512
  Ed448     (ISO 15118-20): ed448, digest shake256 (64 bytes)

    sig = sign_elements("iso2", [{"AuthorizationReq": body}], contract_key)
    problem = signature_problem("iso2", sig, [{"AuthorizationReq": body}], contract_cert)  # None = valid

The verify side is for the harness's SECC (and tests); it reports what is wrong instead of
raising, so a test case can name the defect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from harness.iso15118.exi import codec_for

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"
SIGNED_INFO_CODEC = "xmldsig"


@dataclass(frozen=True)
class Algorithm:
    signature_uri: str
    digest_uri: str
    digest_name: str          # hashlib name
    half: int                 # bytes of r and of s (0 for EdDSA)


ECDSA_SHA256 = Algorithm("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
                         "http://www.w3.org/2001/04/xmlenc#sha256", "sha256", 32)
ECDSA_SHA512 = Algorithm("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
                         "http://www.w3.org/2001/04/xmlenc#sha512", "sha512", 66)
ED448_SHAKE256 = Algorithm("http://www.w3.org/2021/04/xmldsig-more#ed448",
                           "http://www.w3.org/2007/05/xmldsig-more#shake256", "shake_256", 0)
ALGORITHMS = {a.signature_uri: a for a in (ECDSA_SHA256, ECDSA_SHA512, ED448_SHAKE256)}
DIGESTS = {a.digest_uri: a.digest_name for a in ALGORITHMS.values()}

PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed448.Ed448PublicKey


class SigningError(ValueError):
    """Cannot sign: unsupported key, or an element without Id."""


def algorithm_for(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return ED448_SHAKE256
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if isinstance(key.curve, ec.SECP256R1):
            return ECDSA_SHA256
        if isinstance(key.curve, ec.SECP521R1):
            return ECDSA_SHA512
        raise SigningError(f"ISO 15118 signs with secp256r1 or secp521r1, not {key.curve.name}")
    raise SigningError(f"unsupported key type {type(key).__name__}")


def _digest(name: str, data: bytes) -> bytes:
    if name == "shake_256":
        return hashlib.shake_256(data).digest(64)
    return hashlib.new(name, data).digest()


def _element_id(element: dict) -> str:
    if not isinstance(element, dict) or len(element) != 1:
        raise SigningError("a signed element is a dict with one key (its element name)")
    (name, body), = element.items()
    if not isinstance(body, dict) or not isinstance(body.get("Id"), str):
        raise SigningError(f"{name}: a signed element needs an Id attribute")
    return body["Id"]


def fragment_exi(codec: str, element: dict) -> bytes:
    """The EXI fragment of one element, exactly what its digest is computed over."""
    return codec_for(codec).encode_fragment(element)


def signed_info_exi(signed_info: dict) -> bytes:
    return codec_for(SIGNED_INFO_CODEC).encode_fragment({"SignedInfo": signed_info})


def sign_elements(codec: str, elements: list[dict], key: PrivateKey) -> dict:
    """The header's Signature element (canonical dict) over `elements` of schema `codec`."""
    if not elements:
        raise SigningError("nothing to sign")
    algorithm = algorithm_for(key)
    references = []
    for element in elements:
        element_id = _element_id(element)
        references.append({
            "URI": "#" + element_id,
            "Transforms": {"Transform": [{"Algorithm": CANONICAL_EXI}]},
            "DigestMethod": {"Algorithm": algorithm.digest_uri},
            "DigestValue": _digest(algorithm.digest_name, fragment_exi(codec, element)),
        })
    signed_info = {"CanonicalizationMethod": {"Algorithm": CANONICAL_EXI},
                   "SignatureMethod": {"Algorithm": algorithm.signature_uri},
                   "Reference": references}
    data = signed_info_exi(signed_info)
    if isinstance(key, ed448.Ed448PrivateKey):
        value = key.sign(data)
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_hash(algorithm))))
        value = r.to_bytes(algorithm.half, "big") + s.to_bytes(algorithm.half, "big")
    return {"SignedInfo": signed_info, "SignatureValue": {"value": value}}


def _hash(algorithm: Algorithm) -> hashes.HashAlgorithm:
    return hashes.SHA512() if algorithm.digest_name == "sha512" else hashes.SHA256()


def _public_key(signer: x509.Certificate | bytes | PublicKey) -> PublicKey:
    if isinstance(signer, (bytes, bytearray)):
        signer = x509.load_der_x509_certificate(bytes(signer))
    if isinstance(signer, x509.Certificate):
        signer = signer.public_key()
    if not isinstance(signer, (ec.EllipticCurvePublicKey, ed448.Ed448PublicKey)):
        raise SigningError(f"cannot verify with a {type(signer).__name__}")
    return signer


def signature_problem(codec: str, signature: dict | None, elements: list[dict],
                      signer: x509.Certificate | bytes | PublicKey) -> str | None:
    """None if `signature` (a header Signature dict) covers every element with a matching
    digest and its SignatureValue verifies with `signer`'s key; else what is wrong."""
    if not signature:
        return "the message carries no Signature"
    try:
        public_key = _public_key(signer)
        expected = algorithm_for(public_key)
    except SigningError as exc:
        return str(exc)
    signed_info = signature.get("SignedInfo") or {}
    method = (signed_info.get("SignatureMethod") or {}).get("Algorithm")
    if method != expected.signature_uri:
        return f"SignatureMethod {method!r}, but the signer's key needs {expected.signature_uri!r}"
    references = {ref.get("URI"): ref for ref in signed_info.get("Reference", [])}
    for element in elements:
        try:
            element_id = _element_id(element)
        except SigningError as exc:
            return str(exc)
        ref = references.get("#" + element_id)
        if ref is None:
            return f"no Reference to #{element_id} in SignedInfo"
        digest_name = DIGESTS.get((ref.get("DigestMethod") or {}).get("Algorithm"))
        if digest_name is None:
            return f"Reference #{element_id}: unsupported DigestMethod {ref.get('DigestMethod')!r}"
        if ref.get("DigestValue") != _digest(digest_name, fragment_exi(codec, element)):
            return f"Reference #{element_id}: digest does not match the element"
    value = (signature.get("SignatureValue") or {}).get("value", b"")
    data = signed_info_exi(signed_info)
    try:
        if isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(value, data)
        else:
            if len(value) != 2 * expected.half:
                return f"SignatureValue is {len(value)} bytes, expected {2 * expected.half} (raw r||s)"
            der = encode_dss_signature(int.from_bytes(value[:expected.half], "big"),
                                       int.from_bytes(value[expected.half:], "big"))
            public_key.verify(der, data, ec.ECDSA(_hash(expected)))
    except InvalidSignature:
        return "SignatureValue does not verify with the signer's public key"
    return None


def verify_elements(codec: str, signature: dict | None, elements: list[dict],
                    signer: x509.Certificate | bytes | PublicKey) -> bool:
    return signature_problem(codec, signature, elements, signer) is None
