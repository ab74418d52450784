"""The agent's side of osquery's TLS remote API (enroll, config, logger, distributed).

``transport`` makes the HTTPS requests, ``enroll`` owns the node key,
``client`` adds node keys, retries and re-enrollment, and the plugins are
``tls_config``, ``tls_logger`` and ``distributed``.  See docs/remote.md.
"""

from __future__ import annotations

from hostql.agent.remote.client import RemoteClient
from hostql.agent.remote.distributed import Distributed
from hostql.agent.remote.enroll import EnrollError, Enrollment
from hostql.agent.remote.identity import HostIdentity
from hostql.agent.remote.tls_config import RefreshPolicy, TLSConfigSource
from hostql.agent.remote.tls_logger import TLSLogger
from hostql.agent.remote.transport import NodeInvalidError, RemoteError, TLSSettings, TLSTransport

__all__ = [
    "Distributed",
    "EnrollError",
    "Enrollment",
    "HostIdentity",
    "NodeInvalidError",
    "RefreshPolicy",
    "RemoteClient",
    "RemoteError",
    "TLSConfigSource",
    "TLSLogger",
    "TLSSettings",
    "TLSTransport",
]
