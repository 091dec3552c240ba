"""The benchmark harness (``make bench``, ``make profile``); see ``bench.run`` for the procedure.

- ``bench.mock``         the nginx upstream mock and its fixed answers
- ``bench.bare_proxy``   the smallest Sanic + aiohttp pass-through (the Python limit)
- ``bench.rows``         the rows of the table and the gateway config each runs with
- ``bench.procs``        pinned child processes, their CPU time and RSS from /proc
- ``bench.wrk``          wrk runs with generated Lua scripts
- ``bench.streamclient`` time to first byte and total time of streamed answers
- ``bench.stats``        percentiles, ratios, targets and the Markdown table (pure functions)
- ``bench.run``          one full run: ``python -m bench.run [--quick]``
- ``bench.profile``      the memory row under py-spy: ``python -m bench.profile``
- ``bench.redact_speed`` ``app.redact`` against the regex redactor it replaced: ``python -m bench.redact_speed``
"""
