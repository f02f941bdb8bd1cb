"""The reliability suite drives the real CLI against the emulator, like the e2e tests."""

from tests.e2e.conftest import emulator, workspace

__all__ = ["emulator", "workspace"]
