"""The seed's payment example: a payment service and a card-validation service.

- :mod:`examples.payment.cards`: card-number checks (Luhn), pure functions;
- :mod:`examples.payment.apps`: the validation responder, the two aiohttp
  apps (validation and payment) and the two ways the payment service reaches
  validation (over the mesh, or over HTTP through nginx);
- ``payment_service.py``, ``validation_service.py``: the services as
  programs, runnable as scripts (``python examples/payment/payment_service.py``)
  or as modules from the repository root;
- :mod:`examples.payment.demo`: both ways on one host with a guided tour
  (``make demo``, or ``python -m examples.payment.demo``).

This is example code, not part of the installed ``coterie`` package; it uses
coterie's public API and the ``coterie announce`` / ``coterie nginx`` tools.
"""
