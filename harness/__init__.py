"""charger-harness: conformance and interoperability tests for EV chargers and back ends."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("charger-harness")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
