"""The output path's partitioner: the same partition as Kafka's default partitioner."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from stream.output import murmur2

pytestmark = pytest.mark.unit


def test_murmur2_equals_the_kafka_clients_for_every_key_length():
    rng = random.Random(0)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(64) for _ in range(20)]
    keys += [f"user-{i}".encode() for i in range(2_000)] + ["ü-é-中".encode()]
    for key in keys:
        assert murmur2(key) & 0x7FFFFFFF == aiokafka_murmur2(key) & 0x7FFFFFFF, key
