"""Files that mypy checks for what it infers (tests/test_typed_calls.py); never run."""
