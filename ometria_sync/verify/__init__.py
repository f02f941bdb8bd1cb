"""``ometria-sync verify``: know that what was sent arrived (see :mod:`.run`)."""
