// Removed once the subsystem has sources.
