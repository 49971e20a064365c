"""Zero-configuration discovery, byte-compatible with cote 1.2.0 (node-discover)."""
