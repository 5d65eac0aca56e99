"""Views for the session tests (count visits in the session, log out) and a ``cache_page`` view."""

from __future__ import annotations

import itertools

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.cache import cache_page

_renders = itertools.count(1)


def visit(request: HttpRequest) -> HttpResponse:
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(str(request.session["visits"]))


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("bye")


@cache_page(60)
def rendered(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"render {next(_renders)}")


urlpatterns = [path("visit/", visit), path("logout/", logout), path("rendered/", rendered)]
