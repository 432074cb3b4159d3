"""Load templates from YAML text, files and directories, reporting every problem at once.

Warnings (unknown keys and the like) do not stop a template loading: they are collected on
the loaded template as ``template.warnings`` (`TemplateWarning` values with file, step and
field), for the caller to print or log. Errors raise: `TemplateError` for a file that cannot be
read or parsed (with the YAML line and column), `TemplateValidationError` listing every
problem of a template that parsed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from tasker_trio.errors import TemplateError, TemplateValidationError
from tasker_trio.templates.parsing import parse_template
from tasker_trio.templates.problems import Problems, kind
from tasker_trio.templates.task_template import TaskTemplate
from tasker_trio.templates.validation import validate

TEMPLATE_SUFFIXES = (".yaml", ".yml")
"""The file suffixes a directory is searched for."""

StrPath = str | os.PathLike[str]


class _TemplateYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus two surprises.

    - Timestamps stay strings (``created_at: 2025-01-01`` is not turned into a ``datetime``),
      so every loaded value is JSON-compatible, as with tasker-core's YAML 1.2 parser.
    - A key repeated in one mapping is an error (PyYAML silently keeps the last one).
    """

    # PyYAML looks resolvers up on the class, and its stubs declare them an instance variable,
    # so this cannot be a ClassVar; it is never mutated.
    yaml_implicit_resolvers = {  # noqa: RUF012
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; let PyYAML report it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def template_from_yaml(text: str, *, file: str | None = None) -> TaskTemplate:
    """Parse YAML text and build a validated template (see `TaskTemplate.from_yaml`)."""
    where = file or "<string>"
    try:
        # A SafeLoader subclass: plain data only, never arbitrary Python objects.
        data = yaml.load(text, Loader=_TemplateYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise TemplateError(f"invalid YAML{at}: {problem}", file=where) from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"invalid YAML: {exc}", file=where) from None
    if data is None:
        raise TemplateError("the file is empty; expected a task template mapping", file=where)
    if not isinstance(data, Mapping):
        raise TemplateError(f"expected a task template mapping, got {kind(data)}", file=where)
    return template_from_mapping(data, file=where, source_file=file)


def template_from_mapping(
    data: Mapping[str, Any], *, file: str, source_file: str | None = None
) -> TaskTemplate:
    """Build a validated template from its raw mapping.

    Args:
        data: the template, shaped as in YAML.
        file: the name to report problems against.
        source_file: the path to record on the template, if it came from a file.

    Raises:
        TemplateValidationError: every problem found, each with file, step and field.
    """
    problems = Problems(file=file)
    draft = parse_template(data, problems)
    validate(draft, problems)
    if problems.errors:
        raise TemplateValidationError(problems.errors, file=file)
    return attrs.evolve(draft, source_file=source_file, warnings=tuple(problems.warnings))


def load_template(path: StrPath) -> TaskTemplate:
    """Load and validate the template in the YAML file at ``path``.

    Raises:
        TemplateError: the file cannot be read, or is not valid YAML.
        TemplateValidationError: the template has problems; ``errors`` lists them all.
    """
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError("file not found", file=file) from None
    except IsADirectoryError:
        raise TemplateError(
            "is a directory (use load_templates for directories)", file=file
        ) from None
    except UnicodeDecodeError as exc:
        raise TemplateError(f"not UTF-8 text: {exc.reason}", file=file) from None
    except OSError as exc:
        raise TemplateError(f"cannot read the file: {exc.strerror}", file=file) from None
    return template_from_yaml(text, file=file)


def template_files(path: StrPath) -> list[Path]:
    """The template files ``path`` stands for: itself, or every ``*.yaml``/``*.yml`` below it.

    Files under a directory come in sorted order, so loading is deterministic.
    """
    root = Path(path)
    if not root.is_dir():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in TEMPLATE_SUFFIXES and p.is_file())


def validate_paths(
    paths: Iterable[StrPath] | StrPath,
) -> list[tuple[Path, TaskTemplate | TemplateError]]:
    """Load every template file under ``paths``, never raising for a bad template.

    ``paths`` is a list of files and directories (or a single one).

    This is what ``python -m tasker_trio templates validate PATH...`` runs: each file is paired
    with its template (whose ``warnings`` may be worth printing) or with its error. A
    directory holding no template file is paired with an error, so a typo in a path is
    never a silent success.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    results: list[tuple[Path, TaskTemplate | TemplateError]] = []
    for path in paths:
        files = template_files(path)
        if not files:
            reason = "no template files (*.yaml, *.yml) in this directory"
            results.append((Path(path), TemplateError(reason, file=os.fspath(path))))
        for file in files:
            try:
                results.append((file, load_template(file)))
            except TemplateError as exc:
                results.append((file, exc))
    return results


def load_templates(paths: Iterable[StrPath] | StrPath) -> list[TaskTemplate]:
    """Load every template file under ``paths`` (files, or directories searched recursively).

    ``paths`` is a list of files and directories (or a single one).

    Raises:
        TemplateError: when one file fails, its error.
        TemplateValidationError: when several fail, one error listing all their problems.
    """
    results = validate_paths(paths)
    failures = [outcome for _, outcome in results if isinstance(outcome, TemplateError)]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        flat: list[TemplateError] = []
        for failure in failures:
            flat.extend(
                failure.errors if isinstance(failure, TemplateValidationError) else [failure]
            )
        raise TemplateValidationError(flat)
    return [outcome for _, outcome in results if isinstance(outcome, TaskTemplate)]
