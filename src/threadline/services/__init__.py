"""The domain operations behind the API: one module per resource, called by the routers (api/) and the run engine.

Services take plain arguments or dataclass commands, return the stored wire objects and raise the errors of
services/errors.py; they never import from api/. SQL lives in the store's repositories (store/).
"""
