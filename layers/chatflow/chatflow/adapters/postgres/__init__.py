"""Postgres adapter: pools (writer + reader), migrations, repositories."""
