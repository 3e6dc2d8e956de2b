"""The accounts' GraphQL types, permissions and root fields."""
