"""The agent's side of osquery's TLS remote API (enroll, config, logger, distributed).

``transport`` makes the HTTPS requests, ``enroll`` owns the node key,
``client`` adds node keys, retries and re-enrollment, and the plugins are
``tls_config``, ``tls_logger`` and ``distributed``.  See docs/remote.md.
"""

from __future__ import annotations

# Nothing is imported here: importing httpx (with its optional CLI
# dependencies) costs a filesystem-only agent about 10 MB of memory, so the
# modules are imported by name where a TLS plugin is configured.
