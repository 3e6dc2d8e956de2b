"""Database plumbing shared by every domain: URLs, engines, column types, migrations."""
