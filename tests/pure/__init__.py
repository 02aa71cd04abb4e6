"""Pure tests, no server: the fast lane (`make test-fast`, `-m fast`)."""
