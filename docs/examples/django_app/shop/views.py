from django.http import HttpRequest, JsonResponse

from .services import catalogue_size, product_card


def product(request: HttpRequest, product_id: int) -> JsonResponse:
    return JsonResponse({**product_card(product_id), "of": catalogue_size()})


def add_to_cart(request: HttpRequest, product_id: int) -> JsonResponse:
    cart = request.session.get("cart", [])  # the session lives in the cacheplug cache backend
    request.session["cart"] = [*cart, product_id]
    return JsonResponse({"cart": request.session["cart"]})


def cart(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"cart": request.session.get("cart", [])})
