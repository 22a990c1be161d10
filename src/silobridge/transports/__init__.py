"""How the parties' bytes travel: in-process (a direct call into the model-party server) or HTTP.
Network code lives only here; both transports carry the same encoded carriers."""
from silobridge.transports.base import InProcessTransport, Transport

__all__ = ["InProcessTransport", "Transport"]
