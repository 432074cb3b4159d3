"""Business logic behind the `Service` protocol: one ``call`` entry point each.

Services decide; the store applies. Each service turns a request into a planner (a pure
function of a task snapshot, see `tasker_trio.store.plan`) and hands it to one atomic store
operation. Services never import actors: actors wrap services.
"""
