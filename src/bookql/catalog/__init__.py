"""The catalogue domain: categories, books, their descriptions and price history."""
