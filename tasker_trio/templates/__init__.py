"""Task templates: load tasker-core-style YAML, validate it, register it, draw it.

Re-exports only; see docs/templates.md for the template reference.
"""

from tasker_trio.models.codec import json_path as json_path
from tasker_trio.templates.environments import apply_environment as apply_environment
from tasker_trio.templates.loader import load_template as load_template
from tasker_trio.templates.loader import load_templates as load_templates
from tasker_trio.templates.loader import template_files as template_files
from tasker_trio.templates.loader import validate_paths as validate_paths
from tasker_trio.templates.mermaid import to_mermaid as to_mermaid
from tasker_trio.templates.model import ALL_STEPS as ALL_STEPS
from tasker_trio.templates.model import EnvironmentOverride as EnvironmentOverride
from tasker_trio.templates.model import HandlerSpec as HandlerSpec
from tasker_trio.templates.model import IdentityStrategy as IdentityStrategy
from tasker_trio.templates.model import LifecycleConfig as LifecycleConfig
from tasker_trio.templates.model import StalenessAction as StalenessAction
from tasker_trio.templates.model import StepOverride as StepOverride
from tasker_trio.templates.model import StepTemplate as StepTemplate
from tasker_trio.templates.model import TemplateWarning as TemplateWarning
from tasker_trio.templates.registry import TemplateRegistry as TemplateRegistry
from tasker_trio.templates.schema import validate_context as validate_context
from tasker_trio.templates.semver import SemVer as SemVer
from tasker_trio.templates.task_template import TaskTemplate as TaskTemplate
