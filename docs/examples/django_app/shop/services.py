"""What the views read, cached: invalidated by the writes of the products they show."""

from cacheplug import cached

from .models import Product


@cached(tags=["product:{product_id}"])
def product_card(product_id: int) -> dict[str, object]:
    """One product as the page shows it; stale once that product is written."""
    product = Product.objects.get(pk=product_id)
    return {
        "name": product.name,
        "price": f"{product.price / 100:.2f}",
        "tags": sorted(t.name for t in product.tags.all()),
    }


@cached(tags=["product"])
def catalogue_size() -> int:
    """Stale after any product write, bulk ones (QuerySet.update(), bulk_create()) included."""
    return Product.objects.count()
