# Installed, cacheplug's pytest plugin is loaded by its entry point; this line loads it
# where cacheplug is only on the path (a checkout), and is harmless otherwise.
pytest_plugins = ["cacheplug.testing"]
