"""Putting a registered version live: the endpoint's admin and scoring API as a client (`endpoint`),
and the promotion with hot reload, hit check and rollback of aliases (`rollout`)."""
