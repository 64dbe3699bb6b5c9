"""Getting member photos into the gallery: local folders, uploads and scraping, then curation."""
