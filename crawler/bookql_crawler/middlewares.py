"""Scrapy's offsite filter, telling the spider which of its own pages it dropped.

A page that redirects off the site is filtered when its redirect is scheduled, without an
errback: left at that, a start page redirecting elsewhere would end a crawl of nothing as
if it had gone well.
"""

from __future__ import annotations

from scrapy import Request, Spider
from scrapy.downloadermiddlewares.offsite import OffsiteMiddleware
from scrapy.exceptions import IgnoreRequest


class ReportedOffsiteMiddleware(OffsiteMiddleware):
    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        try:
            super().process_request(request)
        except IgnoreRequest:
            report = getattr(self.crawler.spider, "offsite_dropped", None)
            if report is not None:
                report(request)
            raise
