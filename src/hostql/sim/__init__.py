"""``hostql sim``: simulated osquery agents for load-testing a Fleet-compatible server.

:mod:`hostql.sim.main` holds the command and :class:`~hostql.sim.main.Simulation`
(used by bench/bench_server.py); :mod:`hostql.sim.agent` one agent's state
machine; :mod:`hostql.sim.template` the rows agents answer with;
:mod:`hostql.sim.stats` the counters and latency percentiles.
"""
