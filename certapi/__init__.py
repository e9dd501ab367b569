"""certapi: a spec-first partner-certification API (JourneyBee v1 contract)."""

import warnings

# Connexion imports Starlette's test client at start-up, which warns about httpx on every
# `certapi serve`; the server never uses that client.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
