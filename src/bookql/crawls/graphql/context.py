"""What the crawls' resolvers need from a request's context: the accounts' part (who may
start a crawl) and the launcher."""

from __future__ import annotations

from typing import Protocol, TypeAlias

import strawberry

from bookql.accounts.graphql.context import AccountsContext
from bookql.crawls.launcher import CrawlLauncher


class CrawlsContext(AccountsContext, Protocol):
    crawls: CrawlLauncher


Info: TypeAlias = strawberry.Info[CrawlsContext, None]
