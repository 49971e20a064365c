"""Wire formats: AMP framing and the axon message layer, both sans-I/O."""
