"""An app the Streamlit tests run with AppTest: cached orders, clear buttons, the cache panel.

The test steers it through ``st.session_state``: ``ids`` (the orders to show), ``panel``
(draw ``cache_panel``) and ``monitor`` (the monitor to give it). ``log`` collects the order
ids each computation ran for (an ``_``-prefixed argument: not part of the key).
"""

import streamlit as st

from cacheplug.integrations.streamlit import cache_data, cache_panel


@cache_data(ttl="1h", tags=["order:{order_id}"], max_entries=3)
def load_order(order_id: int, _log: list[int]) -> dict[str, object]:
    _log.append(order_id)
    return {"id": order_id, "lines": [order_id * 10]}


log = st.session_state.setdefault("log", [])
for order_id in st.session_state.get("ids", [1]):
    order = load_order(order_id, _log=log)
    order["lines"].append("changed by the app")  # its own copy: the next caller gets a clean one
    again = load_order(order_id, log)
    st.markdown(f"order {order_id}: {again['lines']}")

if st.button("clear order 1"):
    load_order.clear(1, log)
if st.button("clear load_order"):
    load_order.clear()
if st.button("clear every cache_data function"):
    cache_data.clear()
if st.session_state.get("panel"):
    cache_panel(st.session_state.get("monitor"))
