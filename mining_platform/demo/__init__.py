"""The demo data generator: a seeded population and its daily behaviour events (`events`), and
replacing a day of events in one transaction (`store`)."""
