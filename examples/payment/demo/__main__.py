"""``python -m examples.payment.demo``: run the demo."""

from examples.payment.demo.cli import main

raise SystemExit(main())
