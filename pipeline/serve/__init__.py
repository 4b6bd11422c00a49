"""`pipeline serve`: a model package behind MLflow's scoring protocol (starlette on uvicorn).

`payload` checks request bodies against the signature, `app` is the ASGI app and its model
worker child, `openapi` describes the endpoints, `modelenv` finds or builds the model's env and
`launch` puts them together. Importing this package imports none of them.
"""
