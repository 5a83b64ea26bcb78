"""Fault injection for a worker under test, loaded at interpreter start when this folder is
on its PYTHONPATH: every ``INTEREST_TEST_PAUSE_EVERY``-th fetch with events records pauses one
of their partitions as the fetch returns and resumes it 0.2 s later, with no seek between (a
partition paused while its fetch is in flight, as a rebalance's recovery does)."""

import asyncio
import itertools
import os

EVERY = int(os.environ.get("INTEREST_TEST_PAUSE_EVERY", "0"))

if EVERY:
    from faust.types import TP

    from stream import batch_consumer

    fetches = itertools.count(1)
    real_getmany = batch_consumer.BatchConsumer._getmany

    async def _getmany(self, active_partitions, timeout):
        records = await real_getmany(self, active_partitions=active_partitions, timeout=timeout)
        events = sorted(tp for tp in records if tp.topic in self._batch_topics)
        if events and next(fetches) % EVERY == 0:
            tp = TP(events[0].topic, events[0].partition)
            self.pause_partitions({tp})
            asyncio.get_running_loop().call_later(0.2, self.resume_partitions, {tp})
            print(f"injected: {tp.topic}[{tp.partition}] paused as its fetch returned", flush=True)
        return records

    batch_consumer.BatchConsumer._getmany = _getmany
