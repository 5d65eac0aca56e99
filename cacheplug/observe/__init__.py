"""Watching caches over time: published snapshots, the monitor (trends, alerts), reports."""
