"""coterie's examples, importable from the repository root (``python -m examples.payment.demo``)."""
