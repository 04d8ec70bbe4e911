"""Shared by the ISO 15118 tests: module-wide V2G PKIs (they take a moment to build).

Import the fixtures into a test module to use them: `from _v2g import pki2, pki20  # noqa: F401`.
"""

from __future__ import annotations

import pytest

from harness.pki.v2g import make_v2g_pki


@pytest.fixture(scope="module")
def pki2(tmp_path_factory):
    """An ISO 15118-2 PKI (secp256r1 keys, make_v2g_pki flavour "iso2")."""
    return make_v2g_pki(tmp_path_factory.mktemp("pki2"), "iso2")


@pytest.fixture(scope="module")
def pki20(tmp_path_factory):
    """An ISO 15118-20 PKI (secp521r1 keys, make_v2g_pki flavour "iso20-ec")."""
    return make_v2g_pki(tmp_path_factory.mktemp("pki20"), "iso20-ec")
