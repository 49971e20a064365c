"""A one-file Django project: ``gunicorn --preload tests.sync.apps.django_app:application``."""

from __future__ import annotations

from django.conf import settings  # type: ignore[import-untyped]
from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]
from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

from tests.sync.apps import mesh

settings.configure(
    DEBUG=False,
    SECRET_KEY="coterie tests only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
requester = mesh.requester()


def validate(request: HttpRequest, cardno: str) -> JsonResponse:
    """Both responders' answers, as JSON."""
    return JsonResponse(mesh.validate(requester, cardno))


urlpatterns = [path("validate/<str:cardno>", validate)]
application = get_wsgi_application()
