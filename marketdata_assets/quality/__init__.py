"""Checks of what is stored: slice checks over the active loads, trade-id continuity, coverage, minute-bar
completeness, units and time windows."""
