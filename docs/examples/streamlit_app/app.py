"""An orders dashboard: run it with ``streamlit run app.py`` (cacheplug[streamlit] installed)."""

import streamlit as st

from cacheplug.integrations.streamlit import cache_data, cache_panel
from shop import fetch_order, record_sale


@cache_data(ttl="10m", tags=["order:{order_id}"])
def load_order(order_id: int) -> dict:
    return fetch_order(order_id)


st.title("Orders")
order_id = st.selectbox("Order", [1, 2])
order = load_order(order_id)
st.metric("Total", f"{order['total']:.2f}")
st.caption(f"{order['customer']}, {order['items']} items")

if st.button("Record a sale of 10.00"):
    record_sale(order_id, 10.0)
    st.rerun()  # draw the order again: its entry was invalidated by the write

with st.sidebar:
    cache_panel()
