"""The pictures the page shows besides the runs' results, all in the one folder it serves (``runs.SERVED``):
the built-in photos and paintings as choices (``install_builtins``; a choice sent back is the built-in image
by name, ``builtin_of``), and a run's photo at the size of its result, the "before" of before and after
(``before``). No gradio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from nst_lightning.inputs.sources import BUILTIN_IMAGES, BUILTIN_PREFIX, read_source
from nst_lightning.ui.runner import RECORD
from nst_lightning.utilities.files import atomic_write

BUILTINS = ".builtin"  # under SERVED: not a run's name, so never removed with one
BEFORE = "photo.png"


def install_builtins(served: Path) -> dict[str, Path]:
    """Each built-in image, as the package has it, in ``served/.builtin/NAME.jpg``: the page shows and offers
    them from there. Their paths, by name."""
    folder = served / BUILTINS
    paths = {}
    for name in BUILTIN_IMAGES:
        data, path = read_source(BUILTIN_PREFIX + name, "built-in image"), folder / f"{name}.jpg"
        if not path.is_file() or path.read_bytes() != data:
            atomic_write(path, lambda handle, data=data: handle.write(data))
        paths[name] = path
    return paths


def builtin_of(path: Optional[str], served: Path) -> Optional[str]:
    """``builtin:NAME`` when ``path`` is the page's copy of a built-in image (a choice the page offered, sent
    back as a file), else None."""
    if not path:
        return None
    candidate = Path(path)
    folder = (served / BUILTINS).resolve()
    try:
        if candidate.resolve().parent == folder and candidate.stem in BUILTIN_IMAGES and candidate.suffix == ".jpg":
            return BUILTIN_PREFIX + candidate.stem
    except OSError:
        return None
    return None


def before(directory: Path, result: Path) -> Optional[Path]:
    """The run's photo at its result's size, next to the served ``result`` (made once for each version of
    it); None when the photo cannot be read (a run of an older server whose inputs are gone)."""
    target = result.parent / BEFORE
    if target.is_file():
        return target
    from PIL import Image

    from nst_lightning.inputs.images import open_image  # the checks every input gets: a bomb is refused

    try:
        args = json.loads((directory / RECORD).read_text())["args"]
        content = args[len(args) - 1 - args[::-1].index("--data.content") + 1]
        with Image.open(result) as done:
            size = done.size
        photo = open_image(read_source(content, "photo"), max(size), "photo", "photo").resize(size, Image.Resampling.LANCZOS)
    except Exception:  # whatever it is, the result is still shown; only the comparison is not
        return None
    atomic_write(target, lambda handle: photo.save(handle, format="PNG"))
    return target
