"""Background jobs: queue-backed retries, usage roll-ups, rate-window compaction, cache warming.

With Redis they run as arq jobs in ``coo-llm worker`` processes (``workers.settings``); without
it the same job functions run in each web process on a local scheduler (``workers.queue``).
Every job is safe to run twice (or concurrently on several workers): folds move a cursor
atomically, compaction only removes what is expired, and warming and deferred requests claim
their work first (``RuntimeStore.claim``).
"""
