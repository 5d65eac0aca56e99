"""The test project's app: authors and books (many-to-many), orders (an entity name), places."""
