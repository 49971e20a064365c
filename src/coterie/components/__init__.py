"""The components: Requester, Responder, Publisher, Subscriber, Monitor.

Internal: import them from :mod:`coterie`; these modules are asyncio
adapters over :mod:`coterie.protocol` and may change between releases.
"""
