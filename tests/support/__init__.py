"""What tests share: fixture paths, CLI runs, a misbehaving HTTP server, releases
served from it, GCS preconditions for the emulator, independent reference walks."""
