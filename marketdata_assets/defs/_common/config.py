"""The base of every run-config class (`RunConfig`): a field's docstring is its description.

pydantic's `use_attribute_docstrings` makes the string under a field its `description`, which Dagster
shows in the launchpad and docs/configuration.md lists (apps/configuration.py), so a field is
described once, where it is declared.
"""

import dagster as dg
import pydantic


class RunConfig(dg.Config):
    """Run config whose fields' docstrings are their descriptions."""

    model_config = pydantic.ConfigDict(use_attribute_docstrings=True)
