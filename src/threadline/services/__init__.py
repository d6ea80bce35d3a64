"""Wire-neutral operations behind the API routers."""
