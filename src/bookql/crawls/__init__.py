"""Crawls: the record of each crawl of books.toscrape.com, and starting one from the API."""
