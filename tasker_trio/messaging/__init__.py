"""Queues: the `Broker` protocol and its in-memory implementation."""

from tasker_trio.messaging.memory import MemoryQueues as MemoryQueues
from tasker_trio.messaging.protocol import ArchivedMessage as ArchivedMessage
from tasker_trio.messaging.protocol import Broker as Broker
from tasker_trio.messaging.protocol import QueueMessage as QueueMessage
from tasker_trio.messaging.protocol import QueueStatistics as QueueStatistics
