from django.urls import path

from shop import views

urlpatterns = [
    path("products/<int:product_id>/", views.product),
    path("products/<int:product_id>/add/", views.add_to_cart),
    path("cart/", views.cart),
]
