from ometria_sync.cli import entry

entry()
