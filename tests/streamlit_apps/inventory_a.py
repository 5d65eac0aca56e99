"""One of two apps defining the same function with the same code (see inventory_b.py)."""

import streamlit as st

from cacheplug.integrations.streamlit import cache_data

WAREHOUSE = "A"


@cache_data
def stock() -> str:
    return f"stock of warehouse {WAREHOUSE}"


st.markdown(stock())
