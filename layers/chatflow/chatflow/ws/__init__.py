"""The WebSocket protocol: frame models (:mod:`.frames`), event/response helpers (:mod:`.protocol`)
and the handlers' default wiring (:mod:`.wiring`). Described for clients in docs/protocol.md."""
