"""Pins the public surface of tasker_trio.templates: a name appearing or vanishing fails here."""

from __future__ import annotations

import tasker_trio.templates

PUBLIC = {
    "ALL_STEPS",
    "EnvironmentOverride",
    "HandlerSpec",
    "IdentityStrategy",
    "LifecycleConfig",
    "SemVer",
    "StalenessAction",
    "StepOverride",
    "StepTemplate",
    "TaskTemplate",
    "TemplateRegistry",
    "TemplateWarning",
    "apply_environment",
    "json_path",
    "load_template",
    "load_templates",
    "template_files",
    "to_mermaid",
    "validate_context",
    "validate_paths",
}


def test_public_names() -> None:
    exported = {
        name
        for name in vars(tasker_trio.templates)
        if not name.startswith("_")
        and not isinstance(getattr(tasker_trio.templates, name), type(tasker_trio))
    }
    assert exported == PUBLIC
