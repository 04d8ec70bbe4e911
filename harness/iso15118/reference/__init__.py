"""The PyPI iso15118 package as an independent reference: its EXI codec and its SECC/EVCC."""

from harness.iso15118.reference.exi import (
    ReferenceError,
    ReferenceExi,
    ReferenceUnavailable,
    reference_available,
)

__all__ = ["ReferenceError", "ReferenceExi", "ReferenceUnavailable", "reference_available"]
