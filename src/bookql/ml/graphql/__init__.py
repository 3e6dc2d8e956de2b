"""The price model's GraphQL types and root fields."""
