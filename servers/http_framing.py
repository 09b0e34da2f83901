"""Refuse, as soon as its headers are read, an HTTP request whose body length is ambiguous.

Sanic 21.12 (the web server of Rasa and of rasa-sdk) reads a request's headers in
`sanic.http.Http.http1_request_header`, then frames the body by `Transfer-Encoding: chunked`
if present, else by `Content-Length`. A request with both (the classic request-smuggling
shape, RFC 9112 section 6.3) is read as chunked: a body sent by its Content-Length has no chunk
header, so Sanic waits for one until its 60 s request timeout and then answers 503. An unknown
transfer coding or a malformed Content-Length fails later with a 500.

A request middleware cannot help: Sanic runs middleware only once the handler is called, after
the headers were framed, and for streamed or socket.io routes after the body wait. The one
hook Sanic calls between parsing the headers and reading the body is the
`http.lifecycle.request` signal (dispatched inline in `http1_request_header`); an exception
raised there is answered at once by Sanic's error handling, which then closes the connection
(so the unread body is never parsed as a next request). `install` registers that signal and a
JSON 400 for it on an app, before the app starts (Sanic drops the dispatch of signals nobody
registered when it starts).
"""

from __future__ import annotations

from sanic import Sanic, response
from sanic.exceptions import InvalidUsage
from sanic.request import Request
from sanic.response import HTTPResponse


class AmbiguousBodyLength(InvalidUsage):
    """A request whose body length the headers do not state exactly once (400)."""


def framing_problem(request: Request) -> str | None:
    """Why the request's body length is ambiguous, or None if it is clear."""
    codings = request.headers.getall("transfer-encoding", [])
    lengths = request.headers.getall("content-length", [])
    if codings and lengths:
        return "Send either Transfer-Encoding or Content-Length, not both."
    if len(codings) > 1 or (codings and codings[0].strip().lower() != "chunked"):
        return 'The only Transfer-Encoding accepted is "chunked".'
    if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
        return "Content-Length must be one whole number."
    return None


async def refuse_ambiguous_length(request: Request) -> None:
    """The `http.lifecycle.request` signal: raise before Sanic starts waiting for the body."""
    problem = framing_problem(request)
    if problem is not None:
        raise AmbiguousBodyLength(problem)


async def answer_ambiguous_length(_: Request, error: Exception) -> HTTPResponse:
    """A polite JSON 400, like the chat channel's other refusals (the connection then closes)."""
    return response.json({"error": str(error)}, status=400)


def unread(request: Request) -> bool:
    """Whether `request` is Sanic's stand-in for one refused before it was read (e.g. here).

    Sanic runs the request middleware on every error answer, with a stand-in request of
    method "NONE" and no headers when the real one could not be read; a middleware that
    refuses requests (the action server's token check) must let that answer stand.
    """
    return request.method == "NONE"


def install(app: Sanic) -> None:
    """Refuse requests with an ambiguous body length on `app` with 400, at header time."""
    app.signal("http.lifecycle.request")(refuse_ambiguous_length)
    app.exception(AmbiguousBodyLength)(answer_ambiguous_length)


def install_in_rasa() -> None:
    """Install on the app Rasa builds in this process (rasa.core.run.configure_app)."""
    import rasa.core.run

    configure_app = rasa.core.run.configure_app

    def configure_app_with_framing(*args: object, **kwargs: object) -> Sanic:
        app = configure_app(*args, **kwargs)
        install(app)
        return app

    rasa.core.run.configure_app = configure_app_with_framing  # type: ignore[assignment]
