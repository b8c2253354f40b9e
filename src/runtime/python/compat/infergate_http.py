"""The request and response objects infergate hands to a scoring script, without Flask.

Azure's inference server (azmlinfsrv) gives a `@rawhttp` run() the Flask request and sends an
`AMLResponse` (a Flask Response) as-is (contract section 5.4). Scripts written for it use a small part of
Flask's API: `request.files.getlist("file")`, `request.headers.get(...)`, `request.args`, `get_data()`,
`get_json()`, `response.mimetype = "image/jpeg"`, `response.headers[...]`. This module provides that part
with the standard library only, so such scripts run unmodified on an interpreter without Flask.

The modules `azureml.contrib.services.aml_request` / `aml_response` and
`azureml_inference_server_http.api.aml_request` / `aml_response` in this folder re-export from here. This
folder is put at the END of sys.path by the worker, so the real packages win wherever they are installed
(then run() still gets an AMLRequest from here: the worker builds requests from frames, not from WSGI).
"""

import email.message
import email.utils
import http
import http.cookies
import io
import json
import shutil
import urllib.parse

__all__ = [
    "AMLRequest",
    "AMLResponse",
    "BadRequest",
    "FileStorage",
    "Headers",
    "HTTPException",
    "MultiDict",
    "UnsupportedMediaType",
    "rawhttp",
]

# azmlinfsrv's flag (api/aml_request.py): any function decorated with @rawhttp switches the server to raw
# mode. The worker also looks for the attribute set on the function itself.
_rawHttpRequested = False


def rawhttp(func):
    """Marks run() as wanting the request object itself instead of the body as a string (section 5.4)."""
    global _rawHttpRequested
    _rawHttpRequested = True
    try:
        func._infergate_rawhttp = True
    except (AttributeError, TypeError):
        pass  # a builtin or a bound method: the module flag is enough
    return func


# --- Errors, shaped like werkzeug's so `except KeyError` / `e.code` in user code keep working. -------------
class HTTPException(Exception):
    code = 500
    description = ""

    def __init__(self, description=None):
        if description is not None:
            self.description = description
        super().__init__("%d %s: %s" % (self.code, http.HTTPStatus(self.code).phrase, self.description))


class BadRequest(HTTPException):
    code = 400
    description = "The browser (or proxy) sent a request that this server could not understand."


class BadRequestKeyError(BadRequest, KeyError):
    """What werkzeug raises for `request.form["missing"]`: a KeyError that is also a 400."""


class UnsupportedMediaType(HTTPException):
    code = 415
    description = "The server does not support the media type transmitted in the request."


# --- Containers. ------------------------------------------------------------------------------------------
class MultiDict:
    """An ordered mapping from keys to lists of values; `d[key]` and `d.get(key)` give the first value."""

    def __init__(self, pairs=()):
        self._lists = {}
        if hasattr(pairs, "items"):
            pairs = pairs.items()
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)

    def __getitem__(self, key):
        values = self._lists.get(key)
        if not values:
            raise BadRequestKeyError(key)
        return values[0]

    def __setitem__(self, key, value):
        self._lists[key] = [value]

    def __delitem__(self, key):
        del self._lists[key]

    def __contains__(self, key):
        return key in self._lists

    def __iter__(self):
        return iter(self._lists)

    def __len__(self):
        return len(self._lists)

    def __eq__(self, other):
        return isinstance(other, MultiDict) and self._lists == other._lists

    def get(self, key, default=None, type=None):  # noqa: A002 - werkzeug's parameter name
        values = self._lists.get(key)
        if not values:
            return default
        if type is None:
            return values[0]
        try:
            return type(values[0])
        except (ValueError, TypeError):
            return default

    def getlist(self, key, type=None):  # noqa: A002
        values = list(self._lists.get(key, ()))
        if type is None:
            return values
        out = []
        for v in values:
            try:
                out.append(type(v))
            except (ValueError, TypeError):
                pass
        return out

    def add(self, key, value):
        self._lists.setdefault(key, []).append(value)

    def setlist(self, key, values):
        self._lists[key] = list(values)

    def keys(self):
        return self._lists.keys()

    def values(self):
        return [v[0] for v in self._lists.values()]

    def items(self, multi=False):
        if multi:
            return [(k, v) for k, vs in self._lists.items() for v in vs]
        return [(k, vs[0]) for k, vs in self._lists.items()]

    def lists(self):
        return [(k, list(vs)) for k, vs in self._lists.items()]

    def listvalues(self):
        return [list(vs) for vs in self._lists.values()]

    def to_dict(self, flat=True):
        if flat:
            return {k: vs[0] for k, vs in self._lists.items()}
        return {k: list(vs) for k, vs in self._lists.items()}

    def copy(self):
        return MultiDict(self.items(multi=True))

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.items(multi=True))


class Headers:
    """HTTP headers: ordered (name, value) pairs, names compared case-insensitively (werkzeug's Headers).

    As in werkzeug, iterating yields (name, value) pairs, `dict(headers)` gives {name: value}, and a value
    set from a non-string (e.g. a bool) is stored as its str().
    """

    def __init__(self, items=None):
        self._list = []
        if items is not None:
            if hasattr(items, "items"):
                items = items.items()
            for k, v in items:
                self._list.append((k, str(v)))

    def __getitem__(self, key):
        lk = key.lower()
        for k, v in self._list:
            if k.lower() == lk:
                return v
        raise BadRequestKeyError(key)

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        self.remove(key)

    def __contains__(self, key):
        lk = key.lower()
        return any(k.lower() == lk for k, _ in self._list)

    def __iter__(self):
        return iter(list(self._list))

    def __len__(self):
        return len(self._list)

    def __eq__(self, other):
        return isinstance(other, Headers) and self._list == other._list

    def get(self, key, default=None, type=None):  # noqa: A002
        try:
            value = self[key]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def getlist(self, key, type=None):  # noqa: A002
        lk = key.lower()
        values = [v for k, v in self._list if k.lower() == lk]
        return values if type is None else [type(v) for v in values]

    get_all = getlist

    def keys(self, lower=False):
        return [k.lower() if lower else k for k, _ in self._list]

    def values(self):
        return [v for _, v in self._list]

    def items(self, lower=False):
        return [(k.lower() if lower else k, v) for k, v in self._list]

    def add(self, key, value, **params):
        value = str(value)
        for name, param in params.items():
            value += '; %s="%s"' % (name.replace("_", "-"), param) if param is not None else "; %s" % name
        self._list.append((key, value))

    add_header = add

    def set(self, key, value):
        """Replaces the first header of that name in place and drops the others (werkzeug's set)."""
        lk = key.lower()
        value = str(value)
        out = []
        done = False
        for k, v in self._list:
            if k.lower() == lk:
                if not done:
                    out.append((key, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((key, value))
        self._list = out

    def setdefault(self, key, default):
        if key in self:
            return self[key]
        self.set(key, default)
        return str(default)

    def remove(self, key):
        lk = key.lower()
        self._list = [(k, v) for k, v in self._list if k.lower() != lk]

    def pop(self, key, *default):
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        self.remove(key)
        return value

    def extend(self, items):
        if hasattr(items, "items"):
            items = items.items()
        for k, v in items:
            self.add(k, v)

    def update(self, items):
        if hasattr(items, "items"):
            items = items.items()
        for k, v in items:
            self.set(k, v)

    def copy(self):
        return Headers(self._list)

    def to_wsgi_list(self):
        return list(self._list)

    def __str__(self):
        return "".join("%s: %s\r\n" % kv for kv in self._list) + "\r\n"

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self._list)


def parse_options_header(value, header="content-type"):
    """`text/plain; charset="utf-8"` -> ("text/plain", {"charset": "utf-8"}); RFC 2231 values decoded."""
    if not value:
        return "", {}
    msg = email.message.Message()
    msg[header] = value
    params = {}
    for key, val in (msg.get_params(header=header, unquote=True) or [])[1:]:
        params[key.lower()] = email.utils.collapse_rfc2231_value(val)
    return value.split(";", 1)[0].strip().lower(), params


class _ContentTyped:
    """content_type, mimetype and mimetype_params from self.headers, as werkzeug has them on files and requests."""

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @property
    def mimetype(self):
        return parse_options_header(self.content_type)[0]

    @property
    def mimetype_params(self):
        return parse_options_header(self.content_type)[1]


class FileStorage(_ContentTyped):
    """One uploaded file of a multipart/form-data request (werkzeug's FileStorage)."""

    def __init__(self, stream, filename, name, headers):
        self.stream = stream
        self.filename = filename
        self.name = name
        self.headers = headers

    @property
    def content_length(self):
        return len(self.stream.getbuffer())

    def read(self, *args):
        return self.stream.read(*args)

    def readline(self, *args):
        return self.stream.readline(*args)

    def readlines(self, *args):
        return self.stream.readlines(*args)

    def seek(self, *args):
        return self.stream.seek(*args)

    def tell(self):
        return self.stream.tell()

    def __iter__(self):
        return iter(self.stream)

    def save(self, dst, buffer_size=16384):
        """Writes the file to a path or a writable file object."""
        if isinstance(dst, (str, bytes)) or hasattr(dst, "__fspath__"):
            with open(dst, "wb") as f:
                shutil.copyfileobj(self.stream, f, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def close(self):
        self.stream.close()

    def __bool__(self):
        return bool(self.filename)

    def __repr__(self):
        return "<%s: %r (%r)>" % (type(self).__name__, self.filename, self.content_type)


def _split_header_block(block):
    headers = Headers()
    for line in block.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.strip():
            continue
        if line[:1] in (b" ", b"\t") and len(headers):
            # A folded continuation line (obsolete, but cheap to honour).
            k, v = headers._list[-1]
            headers._list[-1] = (k, v + " " + line.strip().decode("utf-8", "replace"))
            continue
        name, sep, value = line.partition(b":")
        if sep:
            headers.add(name.strip().decode("latin-1"), value.strip().decode("utf-8", "replace"))
    return headers


def parse_multipart(body, boundary):
    """Splits a multipart/form-data body (RFC 7578) into (form MultiDict, files MultiDict).

    Byte-exact and by hand rather than with the `email` package: that one re-folds lines, keeps the whole
    message as text, and `cgi` is gone from Python 3.13.
    """
    if not boundary:
        raise BadRequest("Missing boundary in multipart/form-data Content-Type.")
    delim = b"--" + boundary.encode("latin-1")
    form = MultiDict()
    files = MultiDict()
    pos = body.find(delim)
    if pos < 0:
        raise BadRequest("The multipart/form-data body does not contain its boundary.")
    pos += len(delim)
    while body[pos:pos + 2] != b"--":
        eol = body.find(b"\n", pos)  # the rest of the delimiter line (transport padding, CRLF)
        if eol < 0:
            raise BadRequest("The multipart/form-data body ends in the middle of a part.")
        pos = eol + 1
        if body[pos:pos + 2] == b"\r\n" or body[pos:pos + 1] == b"\n":
            head_end = pos  # a part without headers
            content_start = pos + (2 if body[pos:pos + 1] == b"\r" else 1)
        else:
            head_end = body.find(b"\r\n\r\n", pos)
            sep_len = 4
            if head_end < 0:
                head_end = body.find(b"\n\n", pos)
                sep_len = 2
            if head_end < 0:
                raise BadRequest("A multipart/form-data part has no end of headers.")
            content_start = head_end + sep_len
        part_headers = _split_header_block(body[pos:head_end])
        end = body.find(b"\r\n" + delim, content_start)
        nl = 2
        if end < 0:
            end = body.find(b"\n" + delim, content_start)
            nl = 1
        if end < 0:
            raise BadRequest("The multipart/form-data body ends in the middle of a part.")
        content = body[content_start:end]
        pos = end + nl + len(delim)

        _, disposition = parse_options_header(part_headers.get("Content-Disposition", ""), "content-disposition")
        name = disposition.get("name")
        if name is None:
            continue  # not a form field (RFC 7578 section 4.2 requires a name)
        filename = disposition.get("filename*") or disposition.get("filename")
        if filename is not None:
            files.add(name, FileStorage(io.BytesIO(content), filename, name, part_headers))
        else:
            charset = parse_options_header(part_headers.get("Content-Type", ""))[1].get("charset", "utf-8")
            try:
                form.add(name, content.decode(charset, "replace"))
            except LookupError:
                form.add(name, content.decode("utf-8", "replace"))
    return form, files


_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class AMLRequest(_ContentTyped):
    """The request a `@rawhttp` run() receives: the parts of Flask's Request that scoring scripts use.

    Built by the worker from a request frame: method, URL (path + query), headers (names Title-Cased as
    Flask shows them), body.
    """

    charset = "utf-8"

    def __init__(self, method, url, headers, body):
        self.method = method.upper()
        raw_path, _, query = url.partition("?")
        self.path = urllib.parse.unquote(raw_path) or "/"
        self.query_string = query.encode("utf-8")
        self.headers = Headers([(k.title(), v) for k, v in headers])
        self._body = bytes(body)
        self._args = None
        self._form = None
        self._files = None
        self._stream = None
        self._json = _UNSET

    def __repr__(self):
        return "<%s %r [%s]>" % (type(self).__name__, self.url, self.method)

    # URL parts ------------------------------------------------------------------------------------------
    @property
    def args(self):
        if self._args is None:
            self._args = MultiDict(urllib.parse.parse_qsl(self.query_string.decode("utf-8"), keep_blank_values=True))
        return self._args

    @property
    def full_path(self):
        """Path and query, with the "?" even when the query is empty (werkzeug's full_path)."""
        return urllib.parse.quote(self.path) + "?" + self.query_string.decode("utf-8")

    @property
    def scheme(self):
        return self.headers.get("X-Forwarded-Proto", "http")

    @property
    def host(self):
        return self.headers.get("Host", "localhost")

    @property
    def host_url(self):
        return "%s://%s/" % (self.scheme, self.host)

    @property
    def base_url(self):
        return "%s://%s%s" % (self.scheme, self.host, urllib.parse.quote(self.path))

    @property
    def url(self):
        q = self.query_string.decode("utf-8")
        return self.base_url + ("?" + q if q else "")

    @property
    def remote_addr(self):
        forwarded = self.headers.get("X-Forwarded-For")
        return forwarded.split(",")[0].strip() if forwarded else "127.0.0.1"

    # Headers ----------------------------------------------------------------------------------------------
    @property
    def content_length(self):
        return len(self._body)

    @property
    def content_encoding(self):
        return self.headers.get("Content-Encoding")

    @property
    def cookies(self):
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie", ""))
        except http.cookies.CookieError:
            pass
        return MultiDict((k, m.value) for k, m in jar.items())

    @property
    def user_agent(self):
        return self.headers.get("User-Agent", "")

    @property
    def environ(self):
        """A WSGI-style view, for scripts that read request.environ."""
        env = {
            "REQUEST_METHOD": self.method,
            "PATH_INFO": self.path,
            "QUERY_STRING": self.query_string.decode("utf-8"),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": self.scheme,
            "REMOTE_ADDR": self.remote_addr,
        }
        for k, v in self.headers.items():
            key = k.upper().replace("-", "_")
            env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = v
        return env

    # Body -------------------------------------------------------------------------------------------------
    @property
    def stream(self):
        if self._stream is None:
            self._stream = io.BytesIO(self._body)
        return self._stream

    input_stream = stream

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        """The raw body (bytes; str with as_text). As in werkzeug, a form body reads as empty once parsed."""
        if parse_form_data and self.mimetype in _FORM_TYPES:
            self._load_form()
            data = b""
        else:
            data = self._body
        return data.decode(self.charset, "replace") if as_text else data

    @property
    def data(self):
        return self.get_data(parse_form_data=True)

    @property
    def is_json(self):
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_json(self, force=False, silent=False, cache=True):
        """The body parsed as JSON; Flask's errors (415 for another Content-Type, 400 for bad JSON)."""
        if cache and self._json is not _UNSET:
            return self._json
        if not (force or self.is_json):
            if silent:
                return None
            raise UnsupportedMediaType(
                "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.")
        try:
            value = json.loads(self._body.decode(self.charset))
        except ValueError as exc:
            if silent:
                return None
            raise BadRequest("Failed to decode JSON object: %s" % exc) from None
        if cache:
            self._json = value
        return value

    @property
    def json(self):
        return self.get_json()

    def _load_form(self):
        if self._form is not None:
            return
        mt, params = parse_options_header(self.content_type)
        if mt == "multipart/form-data":
            self._form, self._files = parse_multipart(self._body, params.get("boundary"))
        elif mt == "application/x-www-form-urlencoded":
            pairs = urllib.parse.parse_qsl(self._body.decode(params.get("charset", "utf-8"), "replace"), keep_blank_values=True)
            self._form, self._files = MultiDict(pairs), MultiDict()
        else:
            self._form, self._files = MultiDict(), MultiDict()

    @property
    def form(self):
        self._load_form()
        return self._form

    @property
    def files(self):
        self._load_form()
        return self._files

    @property
    def values(self):
        """Query arguments and form fields together (werkzeug's CombinedMultiDict, flattened)."""
        combined = self.args.copy()
        if self.method != "GET":
            for k, v in self.form.items(multi=True):
                combined.add(k, v)
        return combined


_UNSET = object()

# Content types werkzeug gives a "; charset=utf-8" suffix when set through `mimetype`.
_CHARSET_MIMETYPES = {
    "application/ecmascript", "application/javascript", "application/sql", "application/xml",
    "application/xml-dtd", "application/xml-external-parsed-entity",
}


def _with_charset(mimetype):
    if mimetype.startswith("text/") or mimetype in _CHARSET_MIMETYPES or mimetype.endswith("+xml"):
        return mimetype + "; charset=utf-8"
    return mimetype


def _to_bytes(value):
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    try:
        chunks = iter(value)
    except TypeError:
        raise TypeError("A response body must be str, bytes or an iterable of them, not %s" % type(value).__name__) from None
    return b"".join(_to_bytes(c) for c in chunks)


class AMLResponse:
    """What run() returns to choose its own status, headers and body; sent as-is (contract section 5.4).

    AMLResponse(message, status_code, response_headers={}, json_str=False, run_function_failed=False):
    json_str=True sends json.dumps(message) as application/json; message None sends `{}`; otherwise the
    message (str or bytes) is the body, text/html by default as with Flask. A comma in a response_headers
    value splits it into repeated headers. Set `mimetype` or `headers["Content-Type"]` to change the type.
    """

    default_mimetype = "text/html"

    def __init__(self, message, status_code, response_headers={}, json_str=False, run_function_failed=False):  # noqa: B006 - azmlinfsrv's signature
        self.headers = Headers()
        self.status_code = status_code
        response_headers = response_headers or {}
        if message is None:
            self.set_data(b"{}")
            self.headers["Content-Type"] = "application/json"
        elif json_str:
            self.set_data(json.dumps(message))
            self.headers["Content-Type"] = "application/json"
        else:
            self.set_data(message)
            if not any(k.lower() == "content-type" for k in response_headers):
                self.headers["Content-Type"] = _with_charset(self.default_mimetype)
        self.headers["x-ms-run-function-failed"] = run_function_failed
        for header, value in response_headers.items():
            for v in str(value).split(","):
                self.headers.add(header, v.strip())

    @property
    def status_code(self):
        return self._status_code

    @status_code.setter
    def status_code(self, code):
        self._status_code = int(code)

    @property
    def status(self):
        try:
            phrase = http.HTTPStatus(self._status_code).phrase.upper()
        except ValueError:
            phrase = "UNKNOWN"
        return "%d %s" % (self._status_code, phrase)

    @status.setter
    def status(self, value):
        self.status_code = int(str(value).split(None, 1)[0])

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value):
        self.headers["Content-Type"] = value

    @property
    def mimetype(self):
        return parse_options_header(self.content_type)[0] or None

    @mimetype.setter
    def mimetype(self, value):
        self.headers["Content-Type"] = _with_charset(value)

    @property
    def content_length(self):
        return len(self._data)

    def get_data(self, as_text=False):
        return self._data.decode("utf-8") if as_text else self._data

    def set_data(self, value):
        self._data = _to_bytes(value)

    data = property(get_data, set_data)

    @property
    def response(self):
        return [self._data]

    @property
    def is_json(self):
        mt = self.mimetype or ""
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_json(self, force=False, silent=False):
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self._data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json()

    def __repr__(self):
        return "<%s %d bytes [%s]>" % (type(self).__name__, len(self._data), self.status)
