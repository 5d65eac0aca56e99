"""``python manage.py cacheplug ...``."""
