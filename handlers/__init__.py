"""The operations of openapi.yaml, one module per resource, named by their operationIds.

Convention: every authenticated handler takes ``user``, the account of the API key that
called (Connexion passes the security function's ``sub`` under that name, as in its
``examples/apikey``), and hands it on explicitly to every lookup."""
