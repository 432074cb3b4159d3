"""Actor and handler declarations are checked when the class is defined; the public surface."""

from __future__ import annotations

import attrs
import pytest

import tasker_trio.actors as actors_package
from tasker_trio.actors import Actor, Message, RestartPolicy, handles


@attrs.frozen(kw_only=True)
class Ping(Message[int]):
    n: int


@attrs.frozen(kw_only=True)
class Pong(Message[None]):
    pass


def test_public_surface_is_pinned() -> None:
    public = {name for name in vars(actors_package) if not name.startswith("_")}
    modules = {"actor", "cell", "message", "policy", "ref", "registry", "statistics"}
    assert public - modules - {"supervision"} == {
        "Actor",
        "ActorLog",
        "ActorRef",
        "ActorRegistry",
        "ActorStatistics",
        "CrashActor",
        "Message",
        "RegistryStatistics",
        "RestartPolicy",
        "UnknownActor",
        "handles",
        "open_registry",
    }


def test_handlers_are_collected_per_message_type() -> None:
    class Both(Actor[None]):
        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return msg.n

        @handles(Pong)
        async def pong(self, msg: Pong) -> None:
            return None

    assert set(Both.handlers) == {Ping, Pong}
    assert Both.handlers[Ping] is Both.ping
    assert Both.handled_types() == ("Ping", "Pong")


def test_two_handlers_for_one_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'first' and 'second' both handle Ping"):

        class Twice(Actor[None]):
            @handles(Ping)
            async def first(self, msg: Ping) -> int:
                return 1

            @handles(Ping)
            async def second(self, msg: Ping) -> int:
                return 2


def test_handler_for_a_non_message_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expects a Message subclass"):
        handles(int)  # type: ignore[arg-type]


def test_sync_handler_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be an async def"):

        class Sync(Actor[None]):
            @handles(Ping)  # type: ignore[arg-type]
            def ping(self, msg: Ping) -> int:
                return 1


def test_subclass_inherits_and_may_override_handlers() -> None:
    class Base(Actor[None]):
        @handles(Ping)
        async def ping(self, msg: Ping) -> int:
            return 1

    class Child(Base):
        @handles(Ping)
        async def ping_again(self, msg: Ping) -> int:
            return 2

        @handles(Pong)
        async def pong(self, msg: Pong) -> None:
            return None

    assert Base.handlers == {Ping: Base.ping}
    assert Child.handlers == {Ping: Child.ping_again, Pong: Child.pong}


@pytest.mark.parametrize(
    ("attribute", "value", "error"),
    [
        ("concurrency", 0, ValueError),
        ("concurrency", 1.5, TypeError),
        ("mailbox_capacity", 0, ValueError),
        ("mailbox_capacity", float("inf"), TypeError),
        ("stop_grace", -1.0, ValueError),
        ("stop_deadline", float("inf"), ValueError),
        ("restart_policy", 3, TypeError),
    ],
)
def test_nonsensical_settings_fail_at_class_definition(
    attribute: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=attribute):
        type("Bad", (Actor,), {attribute: value})


def test_restart_policy_validates() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ValueError, match="window"):
        RestartPolicy(window=0)


def test_actor_defaults() -> None:
    class Plain(Actor[str]):
        pass

    plain = Plain("ctx")
    assert (plain.name, plain.context) == ("Plain", "ctx")
    assert Plain("ctx", name="other").name == "other"
    assert plain.mailbox_capacity == 64
    assert plain.concurrency == 1
    assert repr(plain) == "<Plain 'Plain'>"


def test_messages_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Ping(n=1).n = 2  # type: ignore[misc]
