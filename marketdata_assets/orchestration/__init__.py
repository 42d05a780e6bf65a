"""How Dagster runs our steps: concurrency pools, the landing sensors' shared logic, the dead-run sweep, the
quiet wait for a pool slot, a command's instance on kept storage connections."""
