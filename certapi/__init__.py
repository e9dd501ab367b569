"""certapi: a spec-first partner-certification API (JourneyBee v1 contract)."""
