"""Every table of every domain, imported so the shared metadata is complete.

Alembic and the schema tests read ``metadata`` from here; a new domain adds its models below.
"""

from bookql.accounts import models as accounts_models
from bookql.catalog import models as catalog_models
from bookql.crawls import models as crawls_models
from bookql.db.base import metadata
from bookql.jobs import models as jobs_models
from bookql.ml import models as ml_models

__all__ = [
    "accounts_models",
    "catalog_models",
    "crawls_models",
    "jobs_models",
    "metadata",
    "ml_models",
]
