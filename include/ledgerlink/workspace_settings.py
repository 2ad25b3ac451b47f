"""A workspace's reconciliation settings as the settings page edits them: review thresholds and the
field mapping (overrides, ignored fields, computed values), each versioned.

Saving never edits a version: a changed mapping is a new ``ops.field_mappings`` version (through
:func:`ledgerlink.delivery.mappings.save_mapping_version`), changed thresholds a new
``ops.threshold_versions`` row (written by the database whenever ``ops.workspaces`` thresholds
change, migration 010). Both apply from the moment they are saved, so records reconciled before
keep what they were decided and delivered with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ledgerlink.delivery.mappings import (
    DEFAULT_FIELDS,
    SAMPLE_VALUES,
    MappingError,
    mapping_in_effect,
    save_mapping_version,
    validate_spec,
)
from ledgerlink.workspaces import Workspace, load_workspace, save_workspace

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class InvalidSettings(ValueError):
    """Settings that cannot be saved; ``problems`` lists each, in words a bookkeeper can act on."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SettingsForm:
    """The settings as typed: thresholds as decimals, the mapping as ``field = value`` lines."""

    auto_link_threshold: str
    review_threshold: str
    overrides: str
    ignored: str
    computed: str


@dataclass(frozen=True)
class SavedSettings:
    """The versions a save created (``None`` for a part that did not change)."""

    threshold_version: int | None
    mapping_version: int | None


@dataclass(frozen=True)
class Change:
    setting: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        return "removed" if self.after is None else "changed"


def _assignments(text: str, label: str, problems: list[str]) -> dict[str, str]:
    """``name = value`` lines (blank lines skipped) as a dict, with a problem per bad line."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not value:
            problems.append(f"{label}, line {number}: write it as field = value")
        elif not _FIELD_NAME.match(name):
            problems.append(
                f"{label}, line {number}: {name!r} is not a field name (lower-case letters, digits, _)"
            )
        elif name in found:
            problems.append(f"{label}, line {number}: {name!r} is given twice")
        else:
            found[name] = value
    return found


def parse_form(form: SettingsForm, workspace: Workspace) -> tuple[Decimal, Decimal, dict[str, Any]]:
    """The thresholds and mapping spec the form says for ``workspace``; raises
    :class:`InvalidSettings` listing every problem (thresholds, as :meth:`Workspace.problems`
    words them, lines, unknown fields, expressions the sandbox refuses)."""
    problems: list[str] = []
    thresholds: list[Decimal] = []
    for label, text in (
        ("auto-link threshold", form.auto_link_threshold),
        ("review threshold", form.review_threshold),
    ):
        try:
            value = Decimal(text.strip().rstrip("%"))
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"{label}: {text.strip()!r} is not a number; write e.g. 0.85")
            value = Decimal(0)
        thresholds.append(value / 100 if text.strip().endswith("%") else value)
    if not problems:
        changed = replace(workspace, auto_link_threshold=thresholds[0], review_threshold=thresholds[1])
        problems.extend(changed.problems())
    overrides = _assignments(form.overrides, "overrides", problems)
    computed = _assignments(form.computed, "computed values", problems)
    ignored = [name.strip() for name in re.split(r"[,\n]", form.ignored) if name.strip()]
    known = set(DEFAULT_FIELDS) | set(overrides) | set(computed)
    for name in ignored:
        if name not in known:
            problems.append(f"ignored: {name!r} is not a field; choose from {', '.join(sorted(known))}")
    spec: dict[str, Any] = {"overrides": overrides, "ignored": ignored, "computed": computed}
    try:
        validate_spec(spec, SAMPLE_VALUES)
    except MappingError as error:
        problems.append(str(error))
    if problems:
        raise InvalidSettings(problems)
    return thresholds[0], thresholds[1], spec


def current_spec(conn: psycopg.Connection, workspace_id: str, at: datetime) -> dict[str, Any]:
    """The mapping in effect at ``at`` as a spec (the built-in default is the empty spec)."""
    mapping = mapping_in_effect(conn, workspace_id, at)
    return {
        "overrides": dict(mapping.overrides),
        "ignored": list(mapping.ignored),
        "computed": dict(mapping.computed),
    }


def save_settings(
    conn: psycopg.Connection, workspace_id: str, form: SettingsForm, *, actor: str, saved_at: datetime
) -> SavedSettings:
    """Validate the form and store what changed as new versions, in one transaction."""
    workspace = load_workspace(conn, workspace_id)
    auto_link, review, spec = parse_form(form, workspace)
    changed = replace(workspace, auto_link_threshold=auto_link, review_threshold=review)
    with conn.transaction():
        conn.execute("select set_config('ledgerlink.actor', %s, true)", (actor,))
        threshold_version = None
        if (auto_link, review) != (workspace.auto_link_threshold, workspace.review_threshold):
            save_workspace(conn, changed)
            row = conn.execute(
                "select max(threshold_version) from ops.threshold_versions where workspace_id = %s",
                (workspace_id,),
            ).fetchone()
            threshold_version = int(row[0]) if row and row[0] is not None else None
        mapping_version = None
        if spec != current_spec(conn, workspace_id, saved_at):
            mapping_version = save_mapping_version(conn, workspace_id, spec, saved_at, actor)
    return SavedSettings(threshold_version, mapping_version)


def threshold_history(conn: psycopg.Connection, workspace_id: str) -> list[dict[str, Any]]:
    """Every threshold version, newest first."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "select threshold_version as version, valid_from, auto_link_threshold, review_threshold,"
            " created_by from ops.threshold_versions where workspace_id = %s order by threshold_version desc",
            (workspace_id,),
        ).fetchall()


def mapping_history(conn: psycopg.Connection, workspace_id: str) -> list[dict[str, Any]]:
    """Every mapping version, newest first, then the built-in default (version 0)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            "select mapping_version as version, valid_from, spec, created_by from ops.field_mappings"
            " where workspace_id = %s order by mapping_version desc",
            (workspace_id,),
        ).fetchall()
    rows.append({"version": 0, "valid_from": None, "spec": {}, "created_by": "built-in default"})
    return [{**row, "setting_count": len(flatten_spec(row["spec"]))} for row in rows]


def flatten_thresholds(version: dict[str, Any]) -> dict[str, str]:
    return {
        "auto-link threshold": str(version["auto_link_threshold"]),
        "review threshold": str(version["review_threshold"]),
    }


def flatten_spec(spec: dict[str, Any]) -> dict[str, str]:
    """A mapping spec as one line per setting, so two versions compare line by line."""
    flat = {f"fixed value {name}": str(value) for name, value in (spec.get("overrides") or {}).items()}
    flat.update({f"computed {name}": str(value) for name, value in (spec.get("computed") or {}).items()})
    flat.update({f"left out {name}": "left out" for name in spec.get("ignored") or ()})
    return flat


def diff(before: dict[str, str], after: dict[str, str]) -> list[Change]:
    """What changed from ``before`` to ``after``, setting by setting, in name order."""
    return [
        Change(name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
