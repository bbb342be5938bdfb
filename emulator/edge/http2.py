"""HTTP/2 connections (h2c with prior knowledge, or TLS with ALPN `h2`) served through the aiohttp application.

Framing, HPACK, stream states and flow-control accounting are python-hyper's `h2` library; this module only
moves bytes between it and the socket and runs each stream as an aiohttp request. A stream becomes a real
`web.Request` (built by the same factory aiohttp's HTTP/1.1 handler uses, with a `StreamReader` body) and runs
through the same `Server.request_handler` (the app's router and middlewares), and its response object writes
through `_StreamWriter` below instead of HTTP/1.1 framing. So request ids, error shaping, the testing seam and
every route behave identically on both transports.

Semantics a client relies on: streams run concurrently; RST_STREAM or a lost connection cancels that stream's
handler at once (as aiohttp's `handler_cancellation` does for HTTP/1.1), which closes its generation; each
response write becomes DATA frames sent at once, waiting only for the peer's flow-control window; request
bodies are acknowledged (WINDOW_UPDATE) as the handler consumes them; a protocol error closes that connection
with GOAWAY and nothing else; `goaway()` refuses new streams at shutdown and the connection closes once its
open streams end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import set_exception
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.http_parser import DeflateBuffer, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestPayloadError
from hyperframe.frame import GoAwayFrame, RstStreamFrame
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .h2_headers import checked
from .hpack_codec import Decoder, Encoder

log = logging.getLogger("emulator.http2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Limits: enough for any SDK's multiplexing (the JS SDK opens one connection per host and puts every call on it),
# bounded so that one client cannot make the server hold unbounded state.
MAX_CONCURRENT_STREAMS = 128
MAX_HEADER_LIST_SIZE = 64 * 1024
MAX_INBOUND_FRAME_SIZE = 64 * 1024
STREAM_WINDOW = 1024 * 1024  # per-stream receive window: a 25 MB body in few round trips
CONNECTION_WINDOW = 16 * 1024 * 1024
BODY_BUFFER = 1024 * 1024  # a request body buffered beyond this waits for its handler before more is acknowledged
# Body bytes acknowledged together: h2 sends a WINDOW_UPDATE only once half a window is consumed anyway, so a small
# body's bytes are given back when its stream ends (`stream_done`) instead of by a call into h2 per DATA frame.
ACKNOWLEDGE_BATCH = 64 * 1024

# Connection-specific headers have no place in HTTP/2 (RFC 9113 8.2.2); aiohttp's response adds some for HTTP/1.1.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}


# A value unique to each response: written as a never-indexed literal, so it does not evict reusable entries
# from the dynamic table (and costs no table insertion).
_UNIQUE = {b"x-amzn-requestid"}


class _Connection(h2.connection.H2Connection):
    """h2's connection, except that:
    - a client's graceful GOAWAY (NO_ERROR) keeps it open while streams remain (python-hyper/h2#1181, see
      `H2Protocol._peer_goaway`) from that very frame on: the frames after it in the same read, such as a
      bidirectional stream's request DATA, must still be accepted;
    - a received header block is normalized and validated by `h2_headers.checked` (h2's own checks, one pass)
      instead of h2's generator chain, which the configuration turns off; a failed check is the same
      `ProtocolError`, so the connection ends with the same GOAWAY;
    - `_receive_frame` is h2's (4.x) without its trace line, whose `repr(frame)` was built for every frame even
      though h2's default logger discards it (2-3% of a small request)."""

    def _receive_frame(self, frame):
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as e:
            # Closed by RST_STREAM: answer with RST_STREAM; otherwise a connection error.
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                events = e._events
            else:
                raise
        except h2.exceptions.StreamIDTooLowError as e:
            # A stream already cleaned up, or implicitly closed by a higher one: a stream error when it was
            # reset, a connection error (STREAM_CLOSED, else PROTOCOL_ERROR) otherwise.
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = h2.errors.ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([f])
                events = []
            elif self._stream_is_closed_by_end(e.stream_id):
                raise h2.exceptions.StreamClosedError(e.stream_id) from e
            else:
                raise
        else:
            self._prepare_for_sending(frames)
        return events

    def _receive_headers_frame(self, frame):
        frames, events = super()._receive_headers_frame(frame)
        for event in events:
            if isinstance(event, (h2.events.RequestReceived, h2.events.TrailersReceived)):
                event.headers = checked(event.headers, trailer=isinstance(event, h2.events.TrailersReceived))
        return frames, events

    def _receive_goaway_frame(self, frame):
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == h2.errors.ErrorCodes.NO_ERROR and self.open_inbound_streams:
            self.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
        return frames, events


class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection. `server` is the aiohttp `web.Server` (request factory and handler)."""

    def __init__(self, server: web.Server, on_close: Callable[["H2Protocol"], None] | None = None) -> None:
        self._server = server
        self._on_close = on_close
        # Inbound headers are validated (they come from anyone), by `_Connection` in one pass rather than by h2's
        # chain; outbound ones are aiohttp's, already well-formed and lower-cased here, so h2 need not re-check
        # every response (a measurable share of a small reply's cost).
        config = h2.config.H2Configuration(client_side=False, header_encoding=None, validate_outbound_headers=False,
                                           normalize_outbound_headers=False, validate_inbound_headers=False,
                                           normalize_inbound_headers=False)
        self.conn = _Connection(config=config)
        self.conn.encoder = Encoder()
        self.conn.decoder = Decoder()
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_INBOUND_FRAME_SIZE,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        # h2 derives these from its settings at construction (or on a SETTINGS ACK), so set them to match.
        self.conn.max_inbound_frame_size = MAX_INBOUND_FRAME_SIZE
        self.conn.decoder.max_header_list_size = MAX_HEADER_LIST_SIZE
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.refusing = False  # our GOAWAY sent: new streams are refused
        self.closing = False  # either side's GOAWAY: close when the last open stream ends
        self._closed = False
        self._flush_scheduled = False
        self._flush_handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by connection_made
        self._window_open = asyncio.Event()  # set whenever the peer may have widened a flow-control window
        self._writable = asyncio.Event()
        self._writable.set()
        # What aiohttp's request reads from its protocol (scheme, remote address).
        self.ssl_context = None
        self.peername = None
        self.sockname = None

    # -- asyncio.Protocol --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport = transport  # type: ignore[assignment]
        self.ssl_context = transport.get_extra_info("sslcontext")
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._flush_scheduled:  # first: h2 drops what it has queued when it receives a GOAWAY
            self._flush()
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # h2 has queued a GOAWAY naming the error
            log.info("HTTP/2 protocol error from %s: %s", self.peername, exc)
            self._flush()
            self._close()
            return
        self._flush_scheduled = True  # what the events queue (window updates, refusals) leaves with the flush below
        try:
            for event in events:
                self._on_event(event)
        finally:
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for stream in list(self.streams.values()):
            stream.lost()
        self._window_open.set()
        self._writable.set()
        if self._on_close is not None:
            self._on_close(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- h2 events ---------------------------------------------------------------------------------------------

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:  # a stream already answered or reset: give the connection window back
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                stream.received(event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body_ended()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.lost()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window_open.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._peer_goaway(event)

    def _peer_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """The client's GOAWAY. With NO_ERROR it is a graceful close (the JS SDK sends one as soon as a response's
        headers arrive, then reads the body): its open streams must still complete (RFC 9113 6.8). h2 moves its
        connection state to CLOSED on any GOAWAY (python-hyper/h2#1181, open), which would forbid that; so the
        state goes back to open while streams remain, and the connection closes when the last one ends."""
        self.closing = True
        if event.error_code != h2.errors.ErrorCodes.NO_ERROR or not self.streams:
            self._close()
            return
        self.conn.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN

    def _request(self, event: h2.events.RequestReceived) -> None:
        if self.refusing:  # after our GOAWAY: refused, the client may retry it on a new connection
            self.conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        stream = _Stream(self, event.stream_id)
        self.streams[event.stream_id] = stream
        stream.start(event.headers, ended=event.stream_ended is not None)

    # -- writing -----------------------------------------------------------------------------------------------

    def _flush_soon(self) -> None:
        """Write what h2 has queued at the end of this loop iteration: the HEADERS and DATA frames that streams
        produce in one iteration leave in one write (one syscall) rather than one each."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._flush_handle is not None:  # written now: a flush still scheduled has nothing left to do
            self._flush_handle.cancel()
            self._flush_handle = None
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if self.conn.state_machine.state != h2.connection.ConnectionState.CLOSED:  # else h2 sent its GOAWAY
                self.conn.close_connection(last_stream_id=self.conn.highest_inbound_stream_id or 0)
            self._flush()
            self.transport.close()

    async def send_data(self, stream_id: int, data: bytes | memoryview, end: bool = False) -> None:
        """Send `data` on a stream as DATA frames now, waiting only while the peer's window is shut."""
        view = memoryview(data)
        while True:
            if self._closed:
                raise ConnectionResetError("the HTTP/2 connection is closed")
            if not self._writable.is_set():  # the transport's buffer is full: wait for it to drain
                await self._writable.wait()
            stream = self.streams.get(stream_id)
            if stream is None or stream.reset:
                raise ConnectionResetError("the HTTP/2 stream was reset")
            try:
                window = self.conn.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError:
                raise ConnectionResetError("the HTTP/2 stream is closed") from None
            size = min(window, self.conn.max_outbound_frame_size, len(view))
            if size == 0 and len(view) > 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            last = size == len(view)
            self.conn.send_data(stream_id, view[:size].tobytes(), end_stream=end and last)
            self._flush_soon()
            view = view[size:]
            if last:
                return

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end: bool = False) -> None:
        if self._closed:
            raise ConnectionResetError("the HTTP/2 connection is closed")
        self.conn.send_headers(stream_id, headers, end_stream=end)
        self._flush_soon()

    def stream_done(self, stream: "_Stream") -> None:
        self.streams.pop(stream.stream_id, None)
        if stream.unacknowledged:  # the connection window must not shrink by a body nobody will read
            self.conn.acknowledge_received_data(stream.unacknowledged, stream.stream_id)
            stream.unacknowledged = 0
        if self.streams:  # others may still write in this iteration: one write for all
            self._flush_soon()
        else:  # the last one: nothing else to wait for, so no extra turn of the loop
            self._flush()
        if self.closing and not self.streams:
            self._close()

    def goaway(self) -> None:
        """Shutdown: tell the client no new stream will be served; close once the open ones are done."""
        if self._closed or self.refusing:
            return
        self.refusing = self.closing = True
        if not self.streams:
            self._close()
            return
        # h2's close_connection() ends the connection's state machine, and with it the open streams; so this
        # first GOAWAY (hyperframe, h2's own frame layer) leaves them running, and _close() sends h2's final one.
        self._flush()
        frame = GoAwayFrame(stream_id=0, last_stream_id=self.conn.highest_inbound_stream_id or 0)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame.serialize())

    def abort(self) -> None:
        """The end of a graceful shutdown: cancel what is still running and close."""
        for stream in list(self.streams.values()):
            stream.lost()
        self._close()


class _Stream:
    """One request/response exchange: its body reader, its handler task, its response writer."""

    def __init__(self, connection: H2Protocol, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.reset = False
        self.unacknowledged = 0  # body bytes received but not yet given back to the peer's window
        self._reading_paused = False  # StreamReader's flow-control hooks read and call these
        self.task: asyncio.Task | None = None
        self.payload: StreamReader | None = None
        self._sink: StreamReader | DeflateBuffer | None = None

    # The parts of aiohttp's RequestHandler that a request and its StreamReader use.
    max_field_size = 8190
    max_headers = 32768

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.connection.transport

    @property
    def connected(self) -> bool:
        return not self.reset and not self.connection._closed

    @property
    def ssl_context(self):
        return self.connection.ssl_context

    @property
    def peername(self):
        return self.connection.peername

    @property
    def sockname(self):
        return self.connection.sockname

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, *args, **kwargs) -> None:
        self._reading_paused = False
        self._acknowledge()

    # -- inbound -----------------------------------------------------------------------------------------------

    def start(self, raw: list[tuple[bytes, bytes]], ended: bool) -> None:
        loop = self.connection._loop
        pseudo: dict[bytes, bytes] = {}
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in raw:
            if name.startswith(b":"):
                pseudo[name] = value
            elif name != b"expect":  # 100-continue is HTTP/1.1's; an HTTP/2 client just sends the body
                headers.add(name.decode("latin-1"), value.decode("latin-1"))
        if b":authority" in pseudo and hdrs.HOST not in headers:
            headers[hdrs.HOST] = pseudo[b":authority"].decode("latin-1")
        method = pseudo.get(b":method", b"").decode("latin-1")
        path = pseudo.get(b":path", b"").decode("latin-1")
        try:
            url = _origin_url(path)
        except ValueError:
            self._answer_plain(400, "Bad Request")
            return
        self.payload = StreamReader(self, BODY_BUFFER, loop=loop)
        encoding = headers.get(hdrs.CONTENT_ENCODING, "").lower()
        self._sink = DeflateBuffer(self.payload, encoding) if encoding in ("gzip", "deflate", "br") else self.payload
        message = RawRequestMessage(
            method, path, HttpVersion11, CIMultiDictProxy(headers), tuple(raw), False, encoding or None, False, False, url
        )
        if ended:
            self.payload.feed_eof()
        self.task = loop.create_task(self._run(message))

    def received(self, data: bytes, flow_controlled: int) -> None:
        self.unacknowledged += flow_controlled
        if self._sink is not None and not self.reset:
            try:
                self._sink.feed_data(data, len(data))
            except ContentEncodingError as exc:  # as aiohttp's parser reports an undecodable body
                set_exception(self.payload, RequestPayloadError(str(exc)), exc)
        if not self._reading_paused and self.unacknowledged >= ACKNOWLEDGE_BATCH:
            self._acknowledge()

    def body_ended(self) -> None:
        if self._sink is not None:
            try:
                self._sink.feed_eof()
            except ContentEncodingError as exc:
                set_exception(self.payload, RequestPayloadError(str(exc)), exc)

    def _acknowledge(self) -> None:
        if self.unacknowledged and not self.reset and self.stream_id in self.connection.streams:
            try:
                self.connection.conn.acknowledge_received_data(self.unacknowledged, self.stream_id)
            except h2.exceptions.StreamClosedError:
                pass
            self.unacknowledged = 0
            self.connection._flush_soon()

    def lost(self) -> None:
        """RST_STREAM or a closed connection: stop the handler (and so its generation) now."""
        self.reset = True
        if self.payload is not None and not self.payload.is_eof():
            set_exception(self.payload, ConnectionResetError("the HTTP/2 stream was reset"))
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # -- the exchange ------------------------------------------------------------------------------------------

    async def _run(self, message: RawRequestMessage) -> None:
        server = self.connection._server
        writer = _StreamWriter(self)
        request = server.request_factory(message, self.payload, self, writer, self.task)  # type: ignore[arg-type]
        try:
            try:
                response = await server.request_handler(request)
            except web.HTTPException as exc:
                response = exc
            except Exception:
                log.exception("unhandled error in %s %s over HTTP/2", message.method, message.path)
                response = web.Response(status=500, text="500 Internal Server Error")
            await response.prepare(request)
            await response.write_eof()
        except asyncio.CancelledError:
            self._reset(h2.errors.ErrorCodes.CANCEL)
            if not self.reset:
                raise
        except ConnectionError:
            self._reset(h2.errors.ErrorCodes.CANCEL)
        except Exception:  # a failure while writing the response: this stream only
            log.exception("error answering %s %s over HTTP/2", message.method, message.path)
            self._reset(h2.errors.ErrorCodes.INTERNAL_ERROR)
        finally:
            request._finish()
            self.connection.stream_done(self)

    def _reset(self, code: h2.errors.ErrorCodes) -> None:
        if self.connection._closed or self.reset:
            return
        self.reset = True
        try:
            self.connection.conn.reset_stream(self.stream_id, code)
        except h2.exceptions.StreamClosedError:
            pass
        self.connection._flush()

    def _answer_plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.connection.send_headers(self.stream_id, [(b":status", str(status).encode()),
                                                      (b"content-type", b"text/plain; charset=utf-8"),
                                                      (b"content-length", str(len(body)).encode())])
        self.connection.conn.send_data(self.stream_id, body, end_stream=True)
        self.connection.stream_done(self)


def _origin_url(path: str) -> URL:
    """The request target as aiohttp's HTTP/1.1 parser builds it (raw, still percent-encoded)."""
    if not path.startswith("/"):
        raise ValueError(path)
    path_part, _, fragment = path.partition("#")
    path_part, _, query = path_part.partition("?")
    return URL.build(path=path_part, query_string=query, fragment=fragment, encoded=True)


class _StreamWriter(AbstractStreamWriter):
    """What an aiohttp response writes through: HEADERS and DATA frames on one stream instead of HTTP/1.1 bytes."""

    def __init__(self, stream: _Stream) -> None:
        self._stream = stream
        self._headers: list[tuple[bytes, bytes]] | None = None
        self._headers_sent = False
        self._eof = False
        self.buffer_size = 0
        self.output_size = 0
        self.length = None

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._stream.transport

    def enable_chunking(self) -> None:
        """HTTP/2 frames the body itself."""

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        raise NotImplementedError("response compression is not used by the emulator")

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        status = status_line.split(" ", 2)[1]
        block = [(b":status", status.encode())]
        for name, value in headers.items():
            key = name.lower().encode("latin-1")
            if key in _UNIQUE:
                block.append(hpack.NeverIndexedHeaderTuple(key, value.encode("latin-1")))
            elif key not in _HOP_BY_HOP:
                block.append((key, value.encode("latin-1")))
        self._headers = block

    def send_headers(self) -> None:
        self._send_headers(end=False)

    def _send_headers(self, end: bool) -> None:
        if self._headers_sent or self._headers is None:
            return
        self._headers_sent = True
        self._stream.connection.send_headers(self._stream.stream_id, self._headers, end=end)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self._send_headers(end=False)
        if chunk:
            self.output_size += len(chunk)
            await self._stream.connection.send_data(self._stream.stream_id, chunk)

    async def write_eof(self, chunk: bytes = b"") -> None:
        if self._eof:
            return
        self._eof = True
        if not self._headers_sent and not chunk:
            self._send_headers(end=True)
            return
        self._send_headers(end=False)
        self.output_size += len(chunk)
        await self._stream.connection.send_data(self._stream.stream_id, chunk, end=True)

    async def drain(self) -> None:
        await self._stream.connection._writable.wait()
