"""The tools and the dev stack: `make dev`, `validate`, `impact`."""
