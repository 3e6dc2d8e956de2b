"""Every table of every domain, imported so the shared metadata is complete.

The domains' tables register on ``bookql.db.base.metadata``; ``db`` imports no domain, so
this composition does. The schema tests (and anyone autogenerating a migration) read
``metadata`` from here; a new domain adds its tables below.
"""

from bookql.accounts import tables as accounts_tables
from bookql.catalog import tables as catalog_tables
from bookql.catalog import tally_tables as catalog_tally_tables
from bookql.crawls import tables as crawls_tables
from bookql.db.base import metadata
from bookql.jobs import tables as jobs_tables
from bookql.ml import tables as ml_tables

__all__ = [
    "accounts_tables",
    "catalog_tables",
    "catalog_tally_tables",
    "crawls_tables",
    "jobs_tables",
    "metadata",
    "ml_tables",
]
