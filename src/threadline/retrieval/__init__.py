"""file_search retrieval core: parsing, chunking, embeddings and the hybrid chunk index."""
