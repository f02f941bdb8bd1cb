"""A local stand-in for Ometria's Data API: how users rehearse a job and how tests prove it."""

from ometria_sync.emulator.app import create_app
from ometria_sync.emulator.behaviour import DEV_KEY, EmulatorOptions
from ometria_sync.emulator.server import RunningEmulator, running_emulator, serve

__all__ = ["DEV_KEY", "EmulatorOptions", "RunningEmulator", "create_app", "running_emulator",
           "serve"]
