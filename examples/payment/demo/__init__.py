"""The seed's payment example, both ways, in one command: ``make demo``.

Run it from the repository root with ``python -m examples.payment.demo``
(``--help`` lists the ports and timings you can change). It is an orchestra
of real processes, all in host scope (discovery on 127.255.255.255, HTTP on
127.0.0.1):

- the mesh way: ``examples/payment/payment_service.py`` on port 3003 and
  mesh validators (``validation_service.py``), found by coterie discovery;
- the nginx way: ``coterie nginx`` (a real nginx whose upstream follows
  discovery), HTTP validators under ``coterie announce``, and the payment
  service's nginx variant on port 3000.

A tour then tells the seed's story over real HTTP, and the demo stays up for
curl until Ctrl-C. Without nginx it runs the mesh half and says how to get
the other.

- :mod:`~examples.payment.demo.cli`: options, signals, start to stop;
- :mod:`~examples.payment.demo.processes`: the child processes;
- :mod:`~examples.payment.demo.tour`: the HTTP tour;
- :mod:`~examples.payment.demo.console`: what the demo prints.
"""
