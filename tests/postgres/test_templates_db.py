"""Templates registered in the database: register, load, conflicts, and engines that use them.

Each engine here opens its own pool from the URL, so engines share nothing but the
database, as separate processes would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tasker_trio import TaskState, TemplateRegistry, UnknownTemplate, open_engine
from tasker_trio.db import Database, DatabaseError
from tasker_trio.errors import ConfigurationError, DuplicateTemplate, TemplateError
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS, TaskRequest
from tasker_trio.models.messages import TaskRequestMessage
from tasker_trio.store.postgres import PostgresStore
from tasker_trio.store.postgres.templates import (
    TemplateVersionConflict,
    content_hash,
    load_registry,
    register_templates,
    registered_namespaces,
    registered_templates,
)
from tasker_trio.templates import TaskTemplate, load_template, load_templates
from tests.postgres._database import open_process

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "templates"
LINEAR = EXAMPLES / "linear.yaml"
ORDER = EXAMPLES / "order_fulfillment.yaml"
ENGINE: dict[str, Any] = {"poll_interval": 0.2, "shutdown_grace": 0.1}


def changed(template: TaskTemplate, **changes: Any) -> TaskTemplate:
    """``template`` with new values, as a differently edited file would load."""
    return attrs.evolve(template, **changes)


async def test_register_and_load_round_trip(database: Database) -> None:
    templates = load_templates(EXAMPLES)
    outcomes = await register_templates(database, templates, registered_by="test suite")
    assert [o.created for o in outcomes] == [True] * len(templates)

    stored = {r.template.key: r for r in await registered_templates(database)}
    assert set(stored) == {t.key for t in templates}
    for template in templates:
        entry = stored[template.key]
        assert entry.template == template
        assert entry.template.to_json() == template.to_json()
        assert entry.content_hash == content_hash(template)
        assert entry.registered_by == "test suite"
        assert entry.source == template.source_file
    registry = await load_registry(database)
    assert sorted(t.identifier for t in registry) == sorted(t.identifier for t in templates)
    assert await registered_namespaces(database) == ["ecommerce", "examples"]


async def test_registering_the_same_content_again_changes_nothing(database: Database) -> None:
    linear = load_template(LINEAR)
    await register_templates(database, [linear], registered_by="first")
    # The same template from another file (a copy elsewhere) is the same content.
    again = await register_templates(
        database, [changed(linear, source_file="elsewhere/linear.yaml")], registered_by="second"
    )
    assert [(o.created, o.registered_by) for o in again] == [(False, "first")]
    (entry,) = await registered_templates(database)
    assert (entry.registered_by, entry.source) == ("first", str(LINEAR))


async def test_equal_content_under_another_hash_is_not_a_conflict(database: Database) -> None:
    # As after an upgrade that serializes templates differently: the hash differs, the
    # template does not, so registering it again must not be refused.
    linear = load_template(LINEAR)
    await database.fetchval(
        "INSERT INTO tasker.namespaces (name, registered_by) VALUES ('examples', 'old')"
    )
    await database.fetchval(
        "INSERT INTO tasker.task_templates (namespace, name, version, template, content_hash,"
        " registered_by) VALUES ($1, $2, $3, $4::jsonb, 'hash-of-an-older-release', 'old')",
        *linear.key,
        linear.to_json(),
    )
    (outcome,) = await register_templates(database, [linear], registered_by="new")
    assert not outcome.created


async def test_different_content_under_a_registered_version_is_refused(database: Database) -> None:
    linear = load_template(LINEAR)
    await register_templates(database, [linear], registered_by="first")
    edited = changed(linear, description="squares, edited", source_file="edited/linear.yaml")
    newcomer = changed(linear, name="another_workflow")

    with pytest.raises(TemplateVersionConflict) as info:
        await register_templates(database, [newcomer, edited], registered_by="second")

    message = str(info.value)
    assert "task template examples/linear_workflow@1.0.0 (from edited/linear.yaml)" in message
    assert "by first" in message
    assert "give the changed template a new version" in message
    assert isinstance(info.value, DuplicateTemplate)
    # Nothing of the batch was registered, and the registered version is untouched.
    (entry,) = await registered_templates(database)
    assert entry.template == linear
    # A new version of the changed template is fine.
    (outcome,) = await register_templates(
        database, [changed(edited, version="1.1.0")], registered_by="second"
    )
    assert outcome.created


async def test_two_different_templates_with_one_identity_register_nothing(
    database: Database,
) -> None:
    linear = load_template(LINEAR)
    edited = changed(linear, description="edited", source_file="edited/linear.yaml")
    with pytest.raises(DuplicateTemplate, match=r"examples/linear_workflow@1\.0\.0"):
        await register_templates(database, [linear, edited], registered_by="test")
    assert await registered_templates(database) == []


async def test_a_stored_template_this_code_finds_invalid_is_left_out_and_logged(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # As one registered by a newer release with a feature this code does not know.
    linear = load_template(LINEAR)
    future = {**changed(linear, name="future").to_json(), "identity_strategy": "telepathic"}
    await register_templates(database, [linear], registered_by="test")
    await database.fetchval(
        "INSERT INTO tasker.task_templates (namespace, name, version, template, content_hash,"
        " registered_by) VALUES ('examples', 'future', '1.0.0', $1::jsonb, 'h', 'newer')",
        future,
    )
    with pytest.raises(TemplateError, match=r"database: examples/future@1\.0\.0: field"):
        await registered_templates(database)

    registry = await load_registry(database)
    assert [t.name for t in registry] == ["linear_workflow"]
    assert "task template examples/future@1.0.0 is left out (not valid for this code)" in (
        caplog.text
    )
    caplog.clear()
    assert await registry.refresh() == 0
    assert "left out" not in caplog.text  # said once, not at every refresh


async def test_a_registered_template_cannot_be_changed_in_place(database: Database) -> None:
    await register_templates(database, [load_template(LINEAR)], registered_by="first")
    with pytest.raises(DatabaseError, match="immutable; register a new version"):
        await database.fetchval(
            'UPDATE tasker.task_templates SET template = template || \'{"description": "x"}\''
        )


async def test_a_second_process_sees_templates_the_first_registered(database: Database) -> None:
    async with open_process(database.dsn) as first, open_process(database.dsn) as second:
        registry = await load_registry(second.db)
        assert len(registry) == 0
        await register_templates(first.db, [load_template(LINEAR)], registered_by="first")
        assert [t.identifier for t in await load_registry(second.db)] == [
            "examples/linear_workflow@1.0.0"
        ]
        # The earlier registry finds it on refresh, and only it.
        with pytest.raises(UnknownTemplate):
            registry.get("examples", "linear_workflow")
        assert await registry.refresh() == 1
        assert registry.get("examples", "linear_workflow").name == "linear_workflow"
        assert await registry.refresh() == 0


async def test_a_registry_without_source_refreshes_to_nothing() -> None:
    registry = TemplateRegistry.from_templates([load_template(LINEAR)])
    assert registry.source is None
    assert await registry.refresh() == 0
    assert len(registry) == 1


async def test_an_engine_registers_its_templates_and_knows_the_others(database: Database) -> None:
    await register_templates(database, [load_template(ORDER)], registered_by="elsewhere")
    async with open_engine(LINEAR, database=database.dsn, workers=False, **ENGINE) as engine:
        known = sorted(t.identifier for t in engine.templates)
    assert known == ["ecommerce/order_fulfillment@1.0.0", "examples/linear_workflow@1.0.0"]
    stored = {r.template.identifier: r.registered_by for r in await registered_templates(database)}
    assert stored["ecommerce/order_fulfillment@1.0.0"] == "elsewhere"
    assert stored["examples/linear_workflow@1.0.0"].startswith("engine orchestrator-")


async def test_an_engine_refuses_a_changed_template_under_a_registered_version(
    database: Database,
) -> None:
    linear = load_template(LINEAR)
    await register_templates(database, [linear], registered_by="first")
    with pytest.raises(TemplateVersionConflict):
        async with open_engine(
            changed(linear, description="edited"), database=database.dsn, **ENGINE
        ):
            raise AssertionError("the engine must not start")


async def test_the_database_keeps_templates_as_written_and_engines_apply_their_environment(
    database: Database,
) -> None:
    async with open_engine(
        ORDER, database=database.dsn, workers=False, environment="test", **ENGINE
    ) as engine:
        used = engine.templates.get("ecommerce", "order_fulfillment")
    assert used.step("validate_order").timeout_seconds == 5  # the test overrides
    (entry,) = await registered_templates(database)
    assert entry.template.step("validate_order").timeout_seconds == 10  # as written
    assert entry.template == load_template(ORDER)


async def test_an_engine_finds_a_template_registered_after_it_started(database: Database) -> None:
    async with open_engine(database=database.dsn, **ENGINE) as engine:
        assert len(engine.templates) == 0
        with pytest.raises(UnknownTemplate):
            await engine.submit("examples", "linear_workflow", {"even_number": 2})
        async with open_process(database.dsn) as other:
            await register_templates(other.db, [load_template(LINEAR)], registered_by="other")
        submission = await engine.submit("examples", "linear_workflow", {"even_number": 2})
        assert submission.created
        with pytest.raises(UnknownTemplate, match="examples/nope"):
            await engine.submit("examples", "nope", {})


async def test_serve_without_templates_runs_a_task_another_engine_registered_and_queued(
    database: Database,
) -> None:
    url = database.dsn
    with trio.fail_after(30):
        async with open_engine(database=url, workers=False, **ENGINE) as serve:
            assert len(serve.templates) == 0  # nothing registered when it starts
            async with open_engine(LINEAR, database=url, orchestration=False, **ENGINE):
                # A client queues a request, as `tasks submit` does.
                request = TaskRequest.create("examples", "linear_workflow", {"even_number": 2})
                await PgmqBroker(database).send(
                    ORCHESTRATION_TASK_REQUESTS, TaskRequestMessage(request=request).to_json()
                )
                task_uuid = await _task_of(PostgresStore(database), request)
                task = await serve.wait_for_task(task_uuid, timeout=20)
                assert task.state == TaskState.COMPLETE
                results = await serve.get_results(task_uuid)
    assert results["linear_step_4"] == {"value": 2**16}
    assert "examples/linear_workflow@1.0.0" in [t.identifier for t in serve.templates]


async def test_a_workers_only_engine_serves_the_registered_namespaces(database: Database) -> None:
    with pytest.raises(ConfigurationError, match="no template is registered"):
        async with open_engine(database=database.dsn, orchestration=False, **ENGINE):
            raise AssertionError("the engine must not start")
    await register_templates(database, load_templates(EXAMPLES), registered_by="test")
    with trio.fail_after(30):
        async with (
            open_engine(database=database.dsn, workers=False, **ENGINE) as serve,
            open_engine(database=database.dsn, orchestration=False, **ENGINE),
        ):
            # Steps of both registered namespaces run, though the worker was given neither.
            linear = await serve.submit("examples", "linear_workflow", {"even_number": 2})
            order = await serve.submit(
                "ecommerce",
                "order_fulfillment",
                {
                    "order_id": "ORD-1",
                    "customer_email": "ada@example.com",
                    "items": [{"sku": "WIDGET-1", "quantity": 1, "price": 19.99}],
                },
            )
            for submission in (linear, order):
                task = await serve.wait_for_task(submission.task_uuid, timeout=20)
                steps = await serve.get_steps(submission.task_uuid)
                assert task.state == TaskState.COMPLETE, [(s.name, s.last_error) for s in steps]


async def _task_of(store: PostgresStore, request: TaskRequest) -> str:
    """The uuid of the task made of ``request``, once a serve process made it."""
    while True:
        for task in await store.list_tasks():
            if task.correlation_id == request.correlation_id:
                return task.task_uuid
        await trio.sleep(0.05)
