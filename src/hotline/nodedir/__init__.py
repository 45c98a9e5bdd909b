"""The node directory: config.toml, the encrypted keystore and the operator token."""
