"""The Scrapy project that crawls books.toscrape.com into bookql's database."""
