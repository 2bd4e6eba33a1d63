"""Where an input's bytes come from: a file, an http(s) URL (downloaded once, then cached) or a
built-in example (``builtin:tubingen``...).

Every source is untrusted: a file may be missing or a directory, and a URL may stall, redirect
forever, redirect to another scheme or return a body larger than any image. Each case ends in a
``UserError`` naming the option and the fix. Decoding the bytes is ``images.py``'s.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import time
import urllib.error
import urllib.parse
import urllib.request
from importlib import resources
from pathlib import Path

from PIL import Image

from nst_lightning.utilities.errors import UserError
from nst_lightning.utilities.files import atomic_write, cache_dir

BUILTIN_PREFIX = "builtin:"
BUILTIN_IMAGES = ("tubingen", "starry_night", "shipwreck", "the_scream")
# Masks for data.regions: the sky of the built-in photo (scripts/make_masks.py made it).
BUILTIN_MASKS = ("tubingen_sky",)
# Per connection attempt and per read: a server that accepts and then says nothing fails this fast.
URL_TIMEOUT_S = 30.0
# For the whole body: a server trickling a byte at a time would never trip the per-read timeout.
URL_TOTAL_TIMEOUT_S = 120.0
MAX_DOWNLOAD_BYTES = 64 * 2**20
MAX_REDIRECTS = 5




def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


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
        raise UserError(f"{option}: only http:// and https:// URLs are supported, not {source!r}")
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(f"{option}: file not found: {source}; give an existing image file or an http(s) URL")
    if not path.is_file():
        raise UserError(f"{option}: {source} is not a file; give an image file or an http(s) URL")
    try:
        return path.read_bytes()
    except OSError as err:
        raise UserError(f"{option}: cannot read {source} ({err.strerror}); check the file's permissions") from None


# ---- downloads -----------------------------------------------------------------------------------


class _DownloadRefused(Exception):
    """A redirect this module will not follow."""


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """At most MAX_REDIRECTS hops, and only to http(s): urllib alone allows 10, and ftp."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise _DownloadRefused(f"it redirects to {newurl!r}, which is not an http(s) URL")
        visited = getattr(req, "redirect_dict", {})
        if newurl in visited or newurl == req.full_url:
            raise _DownloadRefused("it redirects in a loop")
        if len(visited) >= MAX_REDIRECTS:
            raise _DownloadRefused(f"it redirects more than {MAX_REDIRECTS} times")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, option: str, timeout: float) -> bytes:
    opener = urllib.request.build_opener(_RedirectHandler)
    request = urllib.request.Request(url, headers={"User-Agent": "nst_lightning"})
    limit_mib = MAX_DOWNLOAD_BYTES // 2**20
    too_large = f"{option}: {url} is larger than {limit_mib} MiB; download it and give a smaller copy"
    deadline = time.monotonic() + max(URL_TOTAL_TIMEOUT_S, timeout)
    try:
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_DOWNLOAD_BYTES:
                raise UserError(too_large)
            chunks, size = [], 0
            while chunk := response.read(2**16):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise UserError(too_large)
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type", "unknown")
    except urllib.error.HTTPError as err:
        if 300 <= err.code < 400:  # a redirect urllib itself refused (to file://, say)
            reason = " ".join(str(err.reason).split())
            raise UserError(f"{option}: download of {url} refused: {reason}; give the image's final URL or a local file") from None
        raise UserError(f"{option}: download of {url} failed: HTTP {err.code} {err.reason}; check the URL") from None
    except _DownloadRefused as err:
        raise UserError(f"{option}: download of {url} refused: {err}; give the image's final URL or a local file") from None
    except TimeoutError:
        raise UserError(_timeout_message(url, option, timeout)) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise UserError(_timeout_message(url, option, timeout)) from None
        raise UserError(f"{option}: could not download {url} ({err.reason}); check the URL or use a local file") from None
    except (http.client.HTTPException, OSError) as err:
        detail = str(err) or type(err).__name__
        raise UserError(f"{option}: could not download {url} ({detail}); check the URL or use a local file") from None
    body = b"".join(chunks)
    try:
        Image.open(io.BytesIO(body))  # reads the header only: is this an image at all?
    except Exception:
        raise UserError(
            f"{option}: {url} did not return an image (Content-Type {content_type}, {len(body)} bytes); "
            "give the URL of the image file itself"
        ) from None
    return body


def _timeout_message(url: str, option: str, timeout: float) -> str:
    return (
        f"{option}: download of {url} timed out (no answer within {timeout:g} s, or over "
        f"{URL_TOTAL_TIMEOUT_S:g} s in all); try again later or download it and give the file"
    )


def _cached_download(url: str, option: str, timeout: float) -> bytes:
    """Download ``url`` once; later runs (a resume above all) read the cached copy.

    The cache holds each body under its sha256 and maps each URL to a sha256, so a cached file that
    was damaged is detected and fetched again. A cache that cannot be written is skipped, not fatal.
    """
    directory = cache_dir() / "downloads"
    index = directory / f"url-{hashlib.sha256(url.encode()).hexdigest()}"
    try:
        digest = index.read_text().strip()
        body = (directory / f"sha256-{digest}").read_bytes()
        if hashlib.sha256(body).hexdigest() == digest:
            return body
    except (OSError, ValueError):
        pass
    body = _download(url, option, timeout)
    digest = hashlib.sha256(body).hexdigest()
    try:
        atomic_write(directory / f"sha256-{digest}", lambda handle: handle.write(body))
        atomic_write(index, lambda handle: handle.write(digest.encode()))
    except OSError:
        pass
    return body
