"""Streamlit apps on cacheplug: ``cache_data`` (``st.cache_data``'s call shape on cacheplug's
tiers, with tags and entity writes) and ``cache_panel()`` (the cache's figures in the app).

Importing this module imports Streamlit; without it, the import raises an error naming the
extra to install (``pip install 'cacheplug[streamlit]'``).
"""

from .data import ALL_TAG, CachedDataFunction, cache_data
from .panel import cache_panel

__all__ = ["ALL_TAG", "CachedDataFunction", "cache_data", "cache_panel"]
