"""GameSync's own options in a Redis `--broker` URL."""

from __future__ import annotations

import pytest

from gamesync.broker.redis.options import BrokerOptions, split_broker_url
from gamesync.errors import ConfigError


def test_broker_url_options_are_ours_and_the_rest_goes_to_redis() -> None:
    url, options = split_broker_url("redis://:pw@h:6379/0?probe_interval=1.5&ssl_cert_reqs=none")
    assert url == "redis://:pw@h:6379/0?ssl_cert_reqs=none"
    assert options == BrokerOptions(probe_interval=1.5)
    assert split_broker_url("redis+cluster://a:1,b:2")[0] == "redis+cluster://a:1,b:2"
    with pytest.raises(ConfigError, match="positive"):
        split_broker_url("redis://h/0?probe_timeout=0")
    with pytest.raises(ConfigError, match="number"):
        split_broker_url("redis://h/0?reconnect_cap=soon")
