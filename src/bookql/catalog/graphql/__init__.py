"""The catalogue's GraphQL types, loaders and root fields."""
