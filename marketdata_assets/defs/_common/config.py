"""The base of every run-config class (`RunConfig`): a field's docstring is its description.

The string under a field becomes its `description`, which Dagster shows in the launchpad and
docs/configuration.md lists (apps/configuration.py), so a field is described once, where it is
declared. pydantic's own `use_attribute_docstrings` does the same, but on Python < 3.13 it finds
the class's source by walking the call frames through `inspect.getmodule`, which scans every
loaded module per frame: ~0.6 s of each process's definitions load (16 classes). Here the source
comes from the class's module file (`inspect.getsource`), parsed once per class.
"""

import ast
import inspect
import itertools
import textwrap

import dagster as dg


def attribute_docstrings(cls: type) -> dict[str, str]:
    """{field name: the string literal right under its declaration} in `cls`'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    (node,) = ast.parse(source).body
    docs, body = {}, node.body if isinstance(node, ast.ClassDef) else []
    for declared, following in itertools.pairwise(body):
        target = declared.target if isinstance(declared, ast.AnnAssign) else None
        if (
            isinstance(target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[target.id] = inspect.cleandoc(following.value.value)
    return docs


class RunConfig(dg.Config):
    """Run config whose fields' docstrings are their descriptions."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        docs = attribute_docstrings(cls)
        for name, field in cls.model_fields.items():
            if field.description is None and name in docs:
                field.description = docs[name]
