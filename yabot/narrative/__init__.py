"""The seed story and the shop shipped with yabot (TOML data, read by `yabot.seed`)."""
