"""Sans-I/O protocol codecs: bytes in, events out, bytes to send (DESIGN rule 1).

Nothing here touches a socket, an event loop or the configuration.
"""

from portico.protocols.events import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalHead,
    RequestHead,
    ResponseHead,
)
from portico.protocols.http1 import (
    LAST_CHUNK,
    RequestLimits,
    RequestParser,
    ResponseParser,
    chunk_frames,
    encode_trailers,
)

__all__ = [
    "LAST_CHUNK",
    "BodyKind",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "InformationalHead",
    "RequestHead",
    "RequestLimits",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "chunk_frames",
    "encode_trailers",
]
