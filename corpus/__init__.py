"""The knowledge base: settings, records, the embedding model and the Chroma store."""
