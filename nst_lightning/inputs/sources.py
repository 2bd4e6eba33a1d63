"""Where an input's bytes come from: a file, an http(s) URL (downloaded once, then cached) or a
built-in example (``builtin:tubingen``...).

Every source is untrusted: a file may be missing or a directory, and a URL may stall, trickle,
redirect forever, redirect to another scheme, end its body early or return a body larger than any
image. Each case ends in a ``UserError`` naming the option and the fix (never a URL's password), and
nothing but a whole image is cached. Decoding the bytes is ``images.py``'s.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import re
import urllib.error
import urllib.parse
import urllib.request
import warnings
from importlib import resources
from pathlib import Path
from typing import Optional

from PIL import Image

from nst_lightning.inputs._deadline import Deadline, deadline_handlers
from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import atomic_write, cache_dir

BUILTIN_PREFIX = "builtin:"
BUILTIN_IMAGES = ("tubingen", "starry_night", "shipwreck", "the_scream")
# Masks for data.regions: the sky of the built-in photo (scripts/make_masks.py made it).
BUILTIN_MASKS = ("tubingen_sky",)
# Per connection attempt and per read: a server that accepts and then says nothing fails this fast.
URL_TIMEOUT_S = 30.0
# For the whole download, enforced on each socket read: a server trickling a byte at a time would
# never trip the per-read timeout.
URL_TOTAL_TIMEOUT_S = 120.0
MAX_DOWNLOAD_BYTES = 64 * 2**20
MAX_REDIRECTS = 5


def is_url(source: str) -> bool:
    """An http(s) URL, in any case: schemes are case-insensitive (RFC 3986), so ``HTTP://`` is one."""
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https")


def read_source(source: str, option: str, timeout: float = URL_TIMEOUT_S) -> bytes:
    """The raw bytes of a built-in image, an http(s) URL (downloaded once, then cached) or a local file."""
    if source.startswith(BUILTIN_PREFIX):
        name = source.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_IMAGES + BUILTIN_MASKS:
            raise UserError(
                f"{option}: unknown built-in image {source!r}; "
                f"choose one of {', '.join(BUILTIN_PREFIX + n for n in BUILTIN_IMAGES)}"
            )
        return resources.files("nst_lightning.assets").joinpath(f"{name}.{'png' if name in BUILTIN_MASKS else 'jpg'}").read_bytes()
    if is_url(source):
        return _cached_download(source, option, timeout)
    if "://" in source:
        raise UserError(f"{option}: only http:// and https:// URLs are supported, not {redact_url(source)!r}")
    path = Path(source).expanduser()
    shown = source if len(source) <= 120 else f"{source[:60]}...{source[-20:]}"
    try:
        if not path.exists():
            raise UserError(f"{option}: file not found: {shown}; give an existing image file or an http(s) URL")
        if not path.is_file():
            raise UserError(f"{option}: {shown} is not a file; give an image file or an http(s) URL")
        return path.read_bytes()
    except OSError as err:  # a name too long, a loop of links, a permission: the system's reason, in one line
        raise UserError(f"{option}: cannot read {shown} ({err.strerror}); give a readable image file or an http(s) URL") from None


# ---- downloads -----------------------------------------------------------------------------------


def redact_url(source: str) -> str:
    """``source`` as a message may print it: the password of ``https://user:secret@host/...`` becomes
    ``***`` (no error, log or exception text ever shows it)."""
    scheme, sep, rest = source.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0] if sep else ""
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return source
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{rest[len(authority):]}"


def _without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL to request and its headers: a user and password in the URL become an HTTP Basic
    ``Authorization`` header (urllib alone would take ``user:secret@host`` for the host name)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    credentials = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    authority = parts.netloc.rpartition("@")[2]
    token = base64.b64encode(credentials.encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=authority)), {"Authorization": f"Basic {token}"}


def _origin(url: str) -> tuple[str, Optional[str], Optional[int]]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _DownloadRefused(Exception):
    """A redirect this module will not follow."""


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """At most MAX_REDIRECTS hops, and only to http(s): urllib alone allows 10, and ftp. Credentials
    go to the URL's own origin only: urllib would send them on to any host a redirect names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise _DownloadRefused(f"it redirects to {redact_url(newurl)!r}, which is not an http(s) URL")
        visited = getattr(req, "redirect_dict", {})
        if newurl in visited or newurl == req.full_url:
            raise _DownloadRefused("it redirects in a loop")
        if len(visited) >= MAX_REDIRECTS:
            raise _DownloadRefused(f"it redirects more than {MAX_REDIRECTS} times")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _download(url: str, option: str, timeout: float) -> tuple[bytes, bool]:
    """The body of ``url`` and whether it may be cached (an image checked complete)."""
    shown = redact_url(url)
    request_url, headers = _without_credentials(url)
    opener = urllib.request.build_opener(_RedirectHandler, *deadline_handlers(Deadline(URL_TOTAL_TIMEOUT_S, timeout)))
    request = urllib.request.Request(request_url, headers={"User-Agent": "nst_lightning", **headers})
    limit_mib = MAX_DOWNLOAD_BYTES // 2**20
    too_large = f"{option}: {shown} is larger than {limit_mib} MiB; download it and give a smaller copy"
    try:
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length", "").strip()
            if declared.isdigit() and int(declared) > MAX_DOWNLOAD_BYTES:
                raise UserError(too_large)
            chunks, size = [], 0
            while chunk := response.read(2**16):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise UserError(too_large)
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type", "unknown")
            chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
    except urllib.error.HTTPError as err:
        reason = " ".join(str(err.reason).split())
        if 300 <= err.code < 400:  # a redirect urllib itself refused (to file://, say)
            raise UserError(f"{option}: download of {shown} refused: {reason}; give the image's final URL or a local file") from None
        hint = "check the user name and password in the URL" if err.code in (401, 403) else "check the URL"
        raise UserError(f"{option}: download of {shown} failed: HTTP {err.code} {reason}; {hint}") from None
    except _DownloadRefused as err:
        raise UserError(f"{option}: download of {shown} refused: {err}; give the image's final URL or a local file") from None
    except TimeoutError:
        raise UserError(_timeout_message(shown, option, timeout)) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise UserError(_timeout_message(shown, option, timeout)) from None
        raise UserError(f"{option}: could not download {shown} ({redact_url(str(err.reason))}); check the URL or use a local file") from None
    except (http.client.HTTPException, OSError) as err:
        detail = redact_url(str(err)) or type(err).__name__
        raise UserError(f"{option}: could not download {shown} ({detail}); check the URL or use a local file") from None
    if declared.isdigit() and not chunked and size < int(declared):
        # http.client returns what arrived before the connection closed, without a word.
        raise UserError(
            f"{option}: download of {shown} was cut short ({size} of the {declared} bytes it declared); "
            "nothing was cached: try again"
        )
    body = b"".join(chunks)
    return body, _checked_image(body, shown, option, content_type)


def _checked_image(body: bytes, shown: str, option: str, content_type: str = "unknown") -> bool:
    """Raise unless ``body`` is a whole image: a body cut short without a declared length (or damaged)
    must not be cached, or every later run would fail from the cache. False: not checked (an image
    larger than Pillow's limit, which decoding refuses), so not cached either."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(body))  # the header: is this an image at all?
    except Image.DecompressionBombError:
        return False
    except Exception:
        raise UserError(
            f"{option}: {shown} did not return an image (Content-Type {content_type}, {len(body)} bytes); "
            "give the URL of the image file itself"
        ) from None
    if image.width * image.height > (Image.MAX_IMAGE_PIXELS or float("inf")):
        return False
    try:
        if image.format == "PNG":
            image.verify()  # every chunk and its CRC, to IEND, without decoding a pixel
        else:
            image.draft("RGB", (64, 64))  # a JPEG at 1/8 scale: every byte is still read
            image.load()
    except Exception as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"{option}: the image at {shown} is incomplete or damaged ({detail}); nothing was cached: "
            "try again, or check the URL"
        ) from None
    return True


def _timeout_message(shown: str, option: str, timeout: float) -> str:
    return (
        f"{option}: download of {shown} timed out (no answer within {timeout:g} s, or over "
        f"{URL_TOTAL_TIMEOUT_S:g} s in all); try again later or download it and give the file"
    )


def _cached_download(url: str, option: str, timeout: float) -> bytes:
    """Download ``url`` once; later runs (a resume above all) read the cached copy.

    The cache holds each body under its sha256 and maps each URL (without its password) to a sha256,
    so a cached file that was damaged is detected and fetched again. Only whole images are cached,
    and a cached body that is not one (from before that check) is fetched again too. A cache that
    cannot be written is skipped, not fatal.
    """
    directory = cache_dir() / "downloads"
    index = directory / f"url-{hashlib.sha256(_cache_key(url).encode()).hexdigest()}"
    try:
        digest = index.read_text().strip()
        body = (directory / f"sha256-{digest}").read_bytes()
        if hashlib.sha256(body).hexdigest() == digest and _checked_image(body, redact_url(url), option):
            return body
    except (OSError, ValueError, UserError):
        pass
    body, cacheable = _download(url, option, timeout)
    if not cacheable:
        return body
    digest = hashlib.sha256(body).hexdigest()
    try:
        atomic_write(directory / f"sha256-{digest}", lambda handle: handle.write(body))
        atomic_write(index, lambda handle: handle.write(digest.encode()))
    except OSError:
        pass
    return body


def _cache_key(url: str) -> str:
    """The same key for ``HTTP://`` and ``http://`` (schemes are case-insensitive), none with a password."""
    scheme, _, rest = redact_url(url).partition("://")
    return f"{scheme.lower()}://{rest}"
