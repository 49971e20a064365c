"""The components: Requester, Responder, Publisher, Subscriber, Monitor."""
