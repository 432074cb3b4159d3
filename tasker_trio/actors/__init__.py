"""The actor runtime: nursery-supervised actors with bounded memory-channel mailboxes."""

from tasker_trio.actors.actor import Actor as Actor
from tasker_trio.actors.actor import ActorLog as ActorLog
from tasker_trio.actors.message import Message as Message
from tasker_trio.actors.message import handles as handles
from tasker_trio.actors.policy import RestartPolicy as RestartPolicy
from tasker_trio.actors.ref import ActorRef as ActorRef
from tasker_trio.actors.registry import ActorRegistry as ActorRegistry
from tasker_trio.actors.registry import open_registry as open_registry
from tasker_trio.actors.statistics import ActorStatistics as ActorStatistics
from tasker_trio.actors.statistics import RegistryStatistics as RegistryStatistics
from tasker_trio.errors import CrashActor as CrashActor
from tasker_trio.errors import UnknownActor as UnknownActor
