"""Streamlit-side helpers shared by the pages (the core library never imports Streamlit)."""
