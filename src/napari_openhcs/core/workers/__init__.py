"""How wells reach the processes that run them.

The engine's own modules (compiler, steps, well runner) say *what* a well does; this
package holds the plumbing of *where* it runs: the local process and thread pools
(:mod:`.local`), how their processes are started (:mod:`.start`, :mod:`.server_exit`),
what each worker process sets up for itself (:mod:`.process`), and the Dask executor
with the task its workers run (:mod:`.dask_cluster`, :mod:`.dask_task`).

Nothing is imported here: a worker imports only the module it needs.
"""
