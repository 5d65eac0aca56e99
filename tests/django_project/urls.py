"""Views for the session tests: count visits in the session, log out."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def visit(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(str(request.session["visits"]))


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("bye")


urlpatterns = [path("visit/", visit), path("logout/", logout)]
