"""Bundled data and the generators that write it (``demo_data``)."""
