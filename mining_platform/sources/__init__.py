"""Sources: the collections of events a project observes and never writes (watermarks, day counts, import)."""
