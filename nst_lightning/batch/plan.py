"""A collection: which photos and paintings a ``batch`` styles, as jobs, groups and shares.

Pure planning, no optimisation: ``sources`` turns ``--contents``/``--styles`` into image sources,
``plan_jobs`` makes one ``Job`` per photo x painting with a readable, collision-free run name
(``<photo>__<painting>``: no name holds ``__`` but as that separator, and none is too long for a
file system),
``group_jobs`` puts jobs of one result size together for ``--batch_size``, and ``shard`` picks the
I-th of N disjoint shares for a SLURM array. The same command always plans the same jobs, groups
and shares, which is what makes a rerun (after a crash, on another node) finish the rest.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import yaml

from nst_lightning.inputs.sources import BUILTIN_PREFIX
from nst_lightning.utilities.errors import UserError

# What a directory or a glob contributes: files named as images. Anything else beside them
# (notes, sidecars) is left out and counted; a file so named that is no image fails as its own job.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"}
LIST_SUFFIXES = {".txt", ".yaml", ".yml"}
# A run directory's name is <photo>__<painting>, and a group's adds about 20 characters: with each half
# at most this long, every name stays far below the 255 bytes most file systems allow (ENAMETOOLONG).
MAX_NAME_PART = 80
HASH_CHARS = 6


@dataclass(frozen=True)
class Job:
    """One photo in one painting's style, run in ``out/name``."""

    name: str
    content: str
    style: str


@dataclass(frozen=True)
class Sources:
    """The image sources of one option, and how many files beside them were left out."""

    images: list[str]
    skipped: list[str]


def is_remote(source: str) -> bool:
    return source.startswith(("http://", "https://", BUILTIN_PREFIX))


def sources(spec: Union[str, Sequence[str]], option: str) -> Sources:
    """The images ``spec`` names: a file, an http(s) URL, ``builtin:NAME``, a directory (its image
    files, sorted), a glob, a text file of sources one a line (``#`` comments), a YAML file holding a
    list, a YAML list (``"[a.jpg, b.jpg]"``), or several of these."""
    items = [spec] if isinstance(spec, str) else list(spec)
    images: list[str] = []
    skipped: list[str] = []
    for item in items:
        found = _expand(str(item).strip(), option, skipped, ())
        images.extend(found)
    if not images:
        named = ", ".join(map(str, items)) or "nothing"
        left = f" (left out, not named as images: {', '.join(skipped[:3])}{'...' if len(skipped) > 3 else ''})" if skipped else ""
        raise UserError(f"{option} {named}: no images found{left}; give image files, a folder of them, a glob or a list file")
    return Sources(list(dict.fromkeys(images)), skipped)  # in order, each once


def _expand(item: str, option: str, skipped: list[str], reading: tuple[Path, ...]) -> list[str]:
    """``reading``: the list files being read, outermost first, that led to ``item``."""
    if item.startswith("[") and item.endswith("]"):  # a YAML list, as --data.style takes one
        try:
            values = yaml.safe_load(item)
        except yaml.YAMLError:
            raise UserError(f"{option} {item}: not a valid list; write it as \"[a.jpg, b.jpg]\"") from None
        return [source for value in values for source in _expand(str(value), option, skipped, reading)]
    if is_remote(item):
        return [item]
    path = Path(item).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        skipped.extend(str(p) for p in files if p.suffix.lower() not in IMAGE_SUFFIXES)
        return [str(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return _from_list_file(path, option, skipped, reading)
    if path.is_file():
        return [item]
    if glob.has_magic(item):
        matches = sorted(p for p in glob.glob(os.path.expanduser(item)) if os.path.isfile(p))
        if not matches:
            raise UserError(f"{option} {item}: no file matches this pattern; check it (and quote it in the shell)")
        skipped.extend(p for p in matches if Path(p).suffix.lower() not in IMAGE_SUFFIXES)
        return [p for p in matches if Path(p).suffix.lower() in IMAGE_SUFFIXES]
    raise UserError(f"{option} {item}: no such file, folder or URL; check the path (a glob needs quotes in the shell)")


def _from_list_file(path: Path, option: str, skipped: list[str], reading: tuple[Path, ...]) -> list[str]:
    """Sources listed in a file; relative paths are relative to the file's folder. A list that names
    itself, directly or through other lists, is refused (it would be read forever); the same list
    named twice side by side is not a cycle, and its images are taken once."""
    if any(path.samefile(outer) for outer in reading):
        start = next(i for i, outer in enumerate(reading) if path.samefile(outer))
        cycle = " -> ".join(str(p) for p in (*reading[start:], path))
        raise UserError(
            f"{option} {reading[0]}: its list files include each other in a cycle ({cycle}); "
            f"remove the line of {reading[-1]} that names {path.name}"
        )
    reading = (*reading, path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(
            f"{option} {path}: cannot be read as a list of images ({err.__class__.__name__}); give a text file, one image a line"
        ) from None
    if path.suffix.lower() == ".txt":
        entries = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    else:
        try:
            entries = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UserError(f"{option} {path}: not valid YAML; give a YAML list of images") from None
        if not isinstance(entries, list):
            raise UserError(f"{option} {path}: holds no YAML list; write one image a line as \"- photo.jpg\"")
    found = []
    for entry in map(str, entries):
        relative = not is_remote(entry) and not os.path.isabs(os.path.expanduser(entry))
        found.extend(_expand(str(path.parent / entry) if relative else entry, option, skipped, reading))
    return found


# ---- jobs -------------------------------------------------------------------------------------------


def plan_jobs(contents: Sequence[str], styles: Sequence[str]) -> list[Job]:
    """One job per content x style, contents first; run names ``<photo>__<painting>``. Neither half
    holds ``__`` nor starts or ends with ``_``, so a name is read back one way only (``a__b.jpg`` x
    ``c.jpg`` is ``a_b__c``, ``a.jpg`` x ``b__c.jpg`` is ``a__b_c``): no two jobs share a directory."""
    content_names, style_names = _unique_names(contents), _unique_names(styles)
    return [Job(f"{content_names[c]}__{style_names[s]}", c, s) for c in contents for s in styles]


def _stem(source: str) -> str:
    if source.startswith(BUILTIN_PREFIX):
        stem = source.removeprefix(BUILTIN_PREFIX)
    else:
        stem = Path(source.split("?", 1)[0].rstrip("/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    # "__" separates the photo from the painting in a job's name: a half never holds it.
    return re.sub(r"__+", "_", stem).strip("-._") or "image"


def _unique_names(sources: Sequence[str]) -> dict[str, str]:
    """A readable name per source: its file name without the extension. Where two sources share one
    (``a/x.jpg``, ``b/x.jpg``; ``X.jpg``, ``x.jpg``, one folder on a case-insensitive disk), or a name
    is longer than ``MAX_NAME_PART``, it is cut and ends in a short hash of the whole source, so that
    the name does not depend on which other sources are in the collection. Job records and
    ``summary.csv`` keep the sources in full."""
    stems = {source: _stem(source) for source in sources}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    names = {}
    for source, stem in stems.items():
        if counts[stem.lower()] > 1 or len(stem) > MAX_NAME_PART:
            stem = f"{stem[: MAX_NAME_PART - HASH_CHARS - 1].rstrip('-._')}-{hashlib.sha1(source.encode()).hexdigest()[:HASH_CHARS]}"
        names[source] = stem
    return names


# ---- groups and shares --------------------------------------------------------------------------


def group_jobs(jobs: Sequence[Job], batch_size: int, size_of: Callable[[Job], Optional[tuple[int, int]]]) -> list[list[Job]]:
    """Jobs of the same result size (``size_of``; None: unknown, e.g. an unreadable photo, which
    then runs alone and fails alone), in groups of at most ``batch_size``, in job order."""
    if batch_size == 1:
        return [[job] for job in jobs]
    by_size: dict[tuple[int, int], list[Job]] = {}
    alone: list[list[Job]] = []
    for job in jobs:
        size = size_of(job)
        if size is None:
            alone.append([job])
        else:
            by_size.setdefault(size, []).append(job)
    groups = [same[i : i + batch_size] for same in by_size.values() for i in range(0, len(same), batch_size)]
    return sorted(groups + alone, key=lambda group: jobs.index(group[0]))


def shard(groups: Sequence[Sequence[Job]], index: int, count: int) -> list[Sequence[Job]]:
    """The ``index``-th of ``count`` disjoint shares: groups sorted by their first job's name and dealt
    out in turn, so every group is in exactly one share, the shares differ by at most one group, a
    group never straddles two, and a rerun of the same collection (in any order) deals the same."""
    ordered = sorted(groups, key=lambda group: group[0].name)
    return [group for position, group in enumerate(ordered) if position % count == index]
