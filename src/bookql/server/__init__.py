"""The HTTP and GraphQL surface: assembles every domain's schema into one Starlette app."""
