"""Integrations with the frameworks services are built on, one module each.

Each is thin: it maps its framework's events onto cacheplug's public API. Nothing here is
imported by ``import cacheplug``; a module imports its framework when the user imports the
module, and a missing framework raises an error naming the extra to install.
"""
