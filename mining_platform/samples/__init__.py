"""Point-in-time training samples, joined and labelled in MongoDB from committed feature partitions."""
