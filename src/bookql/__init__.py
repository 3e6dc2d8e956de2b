"""bookql: the books.toscrape.com catalogue over GraphQL, with a crawler and a price model."""

__version__ = "0.1.0"
