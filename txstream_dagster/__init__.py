"""txstream's Dagster code location and the tools around it (CLI, local stack, settings)."""
