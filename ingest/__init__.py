"""Documents -> chunks -> embeddings -> store, incrementally."""
