"""What every broker counts, whatever engine is behind it (exported as `gamesync_broker_*`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gamesync.histogram import LatencyHistogram

__all__ = ["LAG_BUCKETS", "BrokerStats"]

#: Upper bounds (seconds) of the publish→receive lag histogram the brokers keep.
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class BrokerStats:
    """Plain counters a broker updates as it works, read at scrape time.

    A broker leaves at zero what its engine does not have (the in-process broker never
    reconnects, probes or resyncs).
    """

    #: games this pod is subscribed to now (gauge)
    subscriptions: int = 0
    #: connections to the engine re-established after losing them
    reconnects: int = 0
    #: probes that did not come back in time, or could not be sent
    probe_failures: int = 0
    #: publishes through this broker refused as not newer
    stale_publishes: int = 0
    #: publishes through this broker that went out
    publishes: int = 0
    #: envelopes received from the engine and handed to the hub
    received: int = 0
    #: messages that were not valid envelopes (logged, dropped)
    malformed: int = 0
    #: latest envelopes re-read after (re)subscribing
    resyncs: int = 0
    #: socket reads of the pub/sub connections (each one callback: envelopes per read is how
    #: many each wake-up carries)
    reads: int = 0
    #: seconds in the pub/sub socket's read callback (reply parsing, routing, envelope parsing,
    #: the hub's bookkeeping), less the fan-outs' writes inside it: the receive path's own cost
    receive_seconds: float = 0.0
    #: seconds the hub spent writing frames to subscribers (`Hub.offer`'s fan-outs), wherever
    #: the envelope came from; the read callback subtracts the share spent inside it
    fanout_seconds: float = 0.0
    #: publish→receive lag from `publishedAt`, per LAG_BUCKETS bound (+Inf last)
    lag: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(LAG_BUCKETS))

    def observe_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)

    @property
    def lag_buckets(self) -> list[int]:
        return self.lag.counts

    @property
    def lag_count(self) -> int:
        return self.lag.count
