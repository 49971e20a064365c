"""WSGI apps that call the mesh with coterie.sync, under real gunicorn (tests/sync/test_wsgi.py).

Each makes one ``coterie.sync.Requester`` at import (``mesh.requester()``),
which ``gunicorn --preload`` runs in the master before it forks the
workers, and each view asks a Python and a Node responder (``mesh.validate``).
"""
