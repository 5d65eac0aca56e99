"""Django management commands of cacheplug's app."""
