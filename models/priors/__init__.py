"""What a user's estimate is smoothed toward: the population prior, the collaborative prior
(category co-occurrence) and content features of items (topics, embeddings)."""
