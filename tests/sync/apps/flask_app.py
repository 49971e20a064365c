"""A Flask app: ``gunicorn --preload tests.sync.apps.flask_app:app``."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.sync.apps import mesh

app = Flask(__name__)
requester = mesh.requester()


@app.get("/validate/<cardno>")
def validate(cardno: str) -> dict[str, Any]:
    """Both responders' answers, as JSON."""
    return mesh.validate(requester, cardno)
