"""Use cases called by pages and the CLI. Each state-changing function checks the actor's role."""
