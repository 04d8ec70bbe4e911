"""Test firmware images and the manufacturer's firmware-signing material (NOT a feature module).

Firmware under test must be signed (OCPP 2.0.1 L01 / 1.6 security whitepaper: SHA-256 over
the image, RSA-PSS). The harness ships one fixed *test* signing key and certificate so that
test cases can quote the certificate and the signatures literally in their `vars:` and the
reference simulators can verify them with `cryptography`. The key is a public test key: it
signs nothing but the images below.

Images are deterministic bytes: a one-line header the station's installer reads
(`model=` must match the station, `version=` becomes its firmware version) and a
pseudo-random body derived from the header, so every process builds the same bytes and the
stored signatures stay valid. `regenerate()` prints fresh constants (a new key) if the
certificate ever needs replacing; nothing calls it at run time.
"""

from __future__ import annotations

import base64
import hashlib
import re

NEW_VERSION = "2.0.0"
STATION_MODEL = "RefSim-DC400"          # the station simulator's model (StationSimConfig.model)


def image(model: str, version: str, size: int = 16384) -> bytes:
    """A firmware image for `model` that installs `version`."""
    header = f"REFSIM-FIRMWARE model={model} version={version}\n".encode()
    body = bytearray()
    block = hashlib.sha256(header).digest()
    while len(header) + len(body) < size:
        body += block
        block = hashlib.sha256(block).digest()
    return header + bytes(body[: size - len(header)])


_HEADER = re.compile(rb"REFSIM-FIRMWARE model=(\S+) version=(\S+)\n")


def parse_header(data: bytes) -> tuple[str, str] | None:
    """(model, version) from an image's header, or None when it is no RefSim image."""
    m = _HEADER.match(data[:200])
    return (m.group(1).decode(), m.group(2).decode()) if m else None


GOOD_IMAGE = image(STATION_MODEL, NEW_VERSION)
OTHER_MODEL_IMAGE = image("OtherVendor-AC22", NEW_VERSION)      # validly signed, but not for this station
TAMPERED_IMAGE = GOOD_IMAGE[:-16] + bytes(16)                     # GOOD_IMAGE altered after signing


# ---- the fixed test signing material (from regenerate()) -------------------------------------

SIGNING_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDh3p+y+7rFSfBW
9wpfDSQ4dYDofZGtfjiASX3WF+WbX3WxgDgIVcSLp7SaV2Ln3rSfAjvgqxYaZK1J
66z9SNtSv9KSg2UDbDSdTQ1biZquRvaEHJK3Ns2dB+E341dCIDmuN20xxeY9TDwF
RCERHlYQIpaIK8h60ux0+UKXLFZ0WbO5UMTk8PFpwWUfjaCv7KgHX45gN/3iBruh
ubpmHyJRbjVP0AWCfH9YoG4ZZNjEVMl37OIvQ49SCk3pCuB3fcxQY/SZ4mbwa+FB
LVLaHBwtfLTCi5mDdVoNpU2c4oZuRVVszWVgXY8dfkqG1X+TJeqyBI/enimpwZNg
spRIt8pDAgMBAAECggEAEDFwPJo8hSlsYCe86ByelKej8scR2yDZ9ySNr3wuG2oI
G44oNjzD5wlCcvBB6IK4a0/zMAPEBWdjXxHU6KHBC5kyBQwDgW/QA9kC1KW0X7s5
sDYGNLlqm0/1zxZu6pA54moZ24AnJgzhnrUIM9x7ahO4vBF7gYa+qhI2unTUy+mB
9Nx01r64+OW7SbfDOcivbU8fHn390OscqufHkmUNTT2zO0c8l4iyxPnIR2o5fAoT
oKqC+vB51+9dkEfZEqakiG/JV0x0VGFkJjqgg5QdpP/Jji8Lw3mS6ou8R38DzHKm
ATLeH0OMyDNMEIt6Qsfhxgj4KDCTtyx8sWYsX4I31QKBgQDwjYAqqnmtoHXJgedC
yMHRN2g7ILnx0JgW14enhaVmMUSR2SCX+ZIvFucpVcwHIXe3sQPyTLY0a8nZyTh8
trFWPgvQ7JRI42DVytaYAZpirTpmZ3JzFsX8e1lvr/LYx+xKFPCCrFvFvL7Aezm3
71yz0Ayh5JWucU4gdXkHZtvxfQKBgQDwX76HlVgkSYQLczPzTLSz/xfpUnKBtQdc
n3RiQLCsOibxaADPGoMMCAxKZH4LdUh6fB76ih/n1Lkqj5qF1XbTyEf4I3DYSpKM
bD5xf0ChKr9t0qJEAk+c/G0A63nyRrqMdHKKKDcSKCklF6XC4q6Dd2+mpYNu1rFn
+TUmP7t2vwKBgAhZsSBKCK1JS61yD/gWhfvgQ4MB8NJ/Hjh0xOXA0uwIO8wgUGxW
Iof18JJTwyBgPgqnX26y0QRi1X/05zwVD3Th9IENJVyeYAcr4mUmcRiJ0OQrJSLv
oHHSSlmBLxntXrt3nJ28o/bqRWjjHi7PZVVsnHOmPrfugPrJeSkTngD1AoGAM9Fw
EWpwheITRSSgnmJ60hK75OCRLsUHwT/epw+rBnXCz2fMRNlCRuW1QJRJV88AwObh
BsGf/yosgLBUb2WFKEKUwTliqj3pObxb+bulAxlkCxjNQjv9TapdFUWuFDyLGpw/
1Oi2doOR2x0t7sVPOagVuacUnmBJ/lAK1SQIFaECgYBPcaqytMP846qMKEAcUhqL
/137iIJ4aJcdXgQVT8ZSju4trnarf0tBHtjef7ikOc0JNTCBLP5NdqvCS9hCTpOi
MFPgnX6jJNKssq+TCLFAFgGT7IxbIeeiNhXxdk9zTiv4/C0XPGRQuHw+52lR/vEz
m5R0QVPcICWJs+2YsgDLtA==
-----END PRIVATE KEY-----
"""

SIGNING_CERT_PEM = """-----BEGIN CERTIFICATE-----
MIIDVTCCAj2gAwIBAgIEXsDx8zANBgkqhkiG9w0BAQsFADBaMSkwJwYDVQQKDCBD
aGFyZ2VySGFybmVzcyBUZXN0IE1hbnVmYWN0dXJlcjEtMCsGA1UEAwwkQ2hhcmdl
ckhhcm5lc3MgVGVzdCBGaXJtd2FyZSBTaWduaW5nMB4XDTI0MDEwMTAwMDAwMFoX
DTQ5MTIzMTAwMDAwMFowWjEpMCcGA1UECgwgQ2hhcmdlckhhcm5lc3MgVGVzdCBN
YW51ZmFjdHVyZXIxLTArBgNVBAMMJENoYXJnZXJIYXJuZXNzIFRlc3QgRmlybXdh
cmUgU2lnbmluZzCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAOHen7L7
usVJ8Fb3Cl8NJDh1gOh9ka1+OIBJfdYX5ZtfdbGAOAhVxIuntJpXYufetJ8CO+Cr
FhpkrUnrrP1I21K/0pKDZQNsNJ1NDVuJmq5G9oQckrc2zZ0H4TfjV0IgOa43bTHF
5j1MPAVEIREeVhAilogryHrS7HT5QpcsVnRZs7lQxOTw8WnBZR+NoK/sqAdfjmA3
/eIGu6G5umYfIlFuNU/QBYJ8f1igbhlk2MRUyXfs4i9Dj1IKTekK4Hd9zFBj9Jni
ZvBr4UEtUtocHC18tMKLmYN1Wg2lTZzihm5FVWzNZWBdjx1+SobVf5Ml6rIEj96e
KanBk2CylEi3ykMCAwEAAaMjMCEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E
BAMCAoQwDQYJKoZIhvcNAQELBQADggEBAKle0fzWXLAjfPulLjOWF110BR62wUPV
epGs/GnC7hP5M7uL9LrUXDL/R2loSy/PSwmHSVwBkrThjHE3t/Bn76eylE4XGRsm
pXZ4jRTMIswptvpb5UPOsmypFdWlKDpLIVEJgX1NOJfdsLWUvgOOmjb0ENKKHnoF
sAoVo1k9ctWAdjPZzCamNSzCyNgXb8IXeu160/zhpWlHh6OlxIjenJswIn18ABcZ
ewvtTS+fUEBnbDRaLvzb2u/7osOIbYvwJ/zBiEig635zIcdZI8Id+hf93YSlUR52
OHawddYbqtsJ3dT3NaXX5x3WG3d1OIwCDBRIQA8ffAVCTKzESi2lFWQ=
-----END CERTIFICATE-----
"""

GOOD_SIGNATURE = "GBGd8TD8Wk89pk52BHITGYeGYFcWrqCqRixO3lw6/O8jiNkyovIRoaFyb8xuiVsYaRwVx2oFRI8HISPZCyMXgJMATYigIZZbcNjomaJizPuT+JlP1CNxtLprThJ1qEMmup5/eluxAgw3PgCLdv2cjzuiXj5yJ8kTJ0KCkD5bYwXpfR1Ti1YwYYvKBJF8QJlM5p+fXpXsfhE7roeWEI9+n/fH8R12K3BZ/z77fDezpD9m2pQqFd6NGuWLk8UFDiO5QTRSCPN9QSd1kOSX8sT16FvwqK068AQVW2pKzZhhg5PxqOLz/K0bByMfJAuOEDrbGhIRcTVEwp7LAt6MmcMGQw=="
OTHER_MODEL_SIGNATURE = "n5k6uAKeG2odbSJIXTp2DKT5x21lHQ21iEE22YcSL+ooaXm57M2qWYqO7uJUT5V2FMi4hflVNmgHVUNt7vRIIDqO0fZQFSjep72atfHswYkL2qetaLMeK0gf9uZ62x/3u+rqryYPRLe893k+w4/7gPWfm8lUXNc/05I9BpdmhSVPxptrzL7JE8mJ/tYncrL4mdU/QI2JNFl0gGQ1JeYFEl5Qi5glHrM6z206q9zbyZUkC/tMz2nvAUK4KNZLBsbifudwAVC+wPlPTPFE8tD0gF0/U69qbHjzeIl03alvMkTPVtmk9nevobJEX3c5voxoQccsIAfgqqmBiqHOEYMH6g=="


def sign(data: bytes, key_pem: str = SIGNING_KEY_PEM) -> str:
    """Base64 RSA-PSS (SHA-256, MGF1 SHA-256, 32-byte salt) signature of `data`."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    sig = key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())   # type: ignore[union-attr,call-arg]
    return base64.b64encode(sig).decode()


def regenerate() -> str:
    """Python source for a new key, certificate and signatures (paste over the constants)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ChargerHarness Test Manufacturer"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "ChargerHarness Test Firmware Signing")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x5EC0F1F3).not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
            .not_valid_after(dt.datetime(2049, 12, 31, tzinfo=dt.timezone.utc))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return "\n".join([key_pem, cert_pem, sign(GOOD_IMAGE, key_pem), sign(OTHER_MODEL_IMAGE, key_pem)])
