"""Services: the domain operations behind the routers, taking plain arguments and returning domain objects.

Nothing here imports from api/; routers parse requests, call a service and map its results and errors
(services.errors) to the wire.
"""
