"""What the emulator's handlers find on the aiohttp application, each under its typed key."""

from __future__ import annotations

import random

from aiohttp import web

from ometria_sync.emulator.options import EmulatorOptions
from ometria_sync.emulator.profiles import ProfileView
from ometria_sync.emulator.store import EmulatorStore

STORE: web.AppKey[EmulatorStore] = web.AppKey("store", EmulatorStore)
OPTIONS: web.AppKey[EmulatorOptions] = web.AppKey("options", EmulatorOptions)
RANDOM: web.AppKey[random.Random] = web.AppKey("random", random.Random)
PROFILES: web.AppKey[ProfileView] = web.AppKey("profiles", ProfileView)
