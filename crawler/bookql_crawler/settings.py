"""Scrapy settings: polite by default; an operator overrides any of them with ``-s NAME=VALUE``.

The database is not configured here: the pipeline uses bookql's own settings
(``BOOKQL_DATABASE_URL``, or the embedded database in ``BOOKQL_DATA_DIR``), so a crawl and
``bookql serve`` share one database.
"""

BOT_NAME = "bookql"
SPIDER_MODULES = ["bookql_crawler.spiders"]
NEWSPIDER_MODULE = "bookql_crawler.spiders"

USER_AGENT = "bookql-crawler/0.1 (catalogue mirror; polite: obeys robots.txt, throttles itself)"
ROBOTSTXT_OBEY = True

CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
DOWNLOAD_TIMEOUT = 30
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_MAX_DELAY = 10
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0

RETRY_ENABLED = True
RETRY_TIMES = 2  # a page answering 5xx is tried three times in all

DOWNLOADER_MIDDLEWARES = {  # the offsite filter, reporting the pages it drops to the spider
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "bookql_crawler.middlewares.ReportedOffsiteMiddleware": 50,
}
ITEM_PIPELINES = {
    "bookql_crawler.pipelines.ValidationPipeline": 100,
    "bookql_crawler.pipelines.DatabasePipeline": 800,
}
SPIDER_CONTRACTS = {"bookql_crawler.contracts.FixtureContract": 10}

# Rows per database transaction (one INSERT … ON CONFLICT per batch).
BOOKQL_BATCH_SIZE = 200
# Set to false to crawl without storing (benchmarks compare with and without).
BOOKQL_STORE = True

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"

# No listening sockets from a crawler: it runs unattended, often beside the API.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
