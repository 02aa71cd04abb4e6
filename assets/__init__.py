"""Asset factories: each takes a ProjectConfig and returns that project's assets."""
