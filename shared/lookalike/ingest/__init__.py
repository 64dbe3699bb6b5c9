"""Getting member photos into the gallery: local folders now; scraping and curation build on the same steps."""
