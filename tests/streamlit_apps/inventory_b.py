"""One of two apps defining the same function with the same code (see inventory_a.py)."""

import streamlit as st

from cacheplug.integrations.streamlit import cache_data

WAREHOUSE = "B"


@cache_data
def stock() -> str:
    return f"stock of warehouse {WAREHOUSE}"


st.markdown(stock())
