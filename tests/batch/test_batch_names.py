"""A collection's job names and list files: every job its own directory, whatever the file names;
list files that include each other refused in one line."""

from __future__ import annotations

import json
import os

import pytest

from nst_lightning.batch.plan import MAX_NAME_PART, plan_jobs, sources
from nst_lightning.utilities.errors import UserError
from tests.batch.batching import batch, summary
from tests.helpers import checkpoint, make_image


def test_names_with_double_underscores_or_edge_underscores_never_collide():
    # Before: a__b x c and a x b__c were both a__b__c; a_ x b and a x _b were both a___b.
    names = [job.name for job in plan_jobs(["a__b.jpg", "a.jpg"], ["c.jpg", "b__c.jpg"])]
    assert names == ["a_b__c", "a_b__b_c", "a__c", "a__b_c"]
    names = [job.name for job in plan_jobs(["a_.jpg", "a.jpg"], ["_b.jpg", "b.jpg"])]
    assert len(set(names)) == 4 and all(len(name.split("__")) == 2 for name in names), names
    # One folder on a case-insensitive disk holds one of X and x: they get a hash each.
    names = [job.name for job in plan_jobs(["d/X.jpg", "e/x.jpg"], ["s.jpg"])]
    assert len({name.lower() for name in names}) == 2 and all(name[1] == "-" for name in names), names


def test_a_batch_of_names_holding_the_separator_gives_every_job_its_own_run(collection, capsys):
    for name, color in [("a__b", (200, 60, 20)), ("a", (20, 160, 60)), ("c", (90, 90, 200)), ("b__c", (240, 240, 10))]:
        make_image(collection / f"{name}.png", color=color)
    assert batch("--trainer.max_steps", "2", contents=("[a__b.png, a.png]",), styles=("[c.png, b__c.png]",)) == 0
    out = collection / "styled"
    rows = summary(out)
    assert [(row["job"], row["content"], row["style"]) for row in rows] == [
        ("a_b__c", "a__b.png", "c.png"), ("a_b__b_c", "a__b.png", "b__c.png"), ("a__c", "a.png", "c.png"), ("a__b_c", "a.png", "b__c.png"),
    ]
    for row in rows:
        record = json.loads((out / row["job"] / "job.json").read_text())
        assert (record["content"], record["style"], record["status"], record["resumed_from_step"]) == (row["content"], row["style"], "done", 0)
        assert checkpoint(out / row["job"] / "checkpoints" / "last.ckpt")["global_step"] == 2


def test_long_file_names_are_shortened_with_a_hash_and_kept_in_full_in_the_records(collection):
    # 200 + 120 characters: before, ENAMETOOLONG (a run directory's name is at most 255 bytes).
    long_photos = [collection / ("p" * 199 + f"{k}.png") for k in range(2)]
    for k, path in enumerate(long_photos):
        make_image(path, color=(200, 60 + 90 * k, 20))
    make_image(collection / ("s" * 120 + ".png"), size=(30, 40), color=(10, 200, 200))
    style = "s" * 120 + ".png"
    # Two photos of one size, optimised together: the group's directory is named from them too.
    assert batch("--batch_size", "2", contents=(str(long_photos[0]), str(long_photos[1])), styles=(style,)) == 0
    out = collection / "styled"
    rows = summary(out)
    assert [row["content"] for row in rows] == [str(p) for p in long_photos] and {row["style"] for row in rows} == {style}
    assert len({row["job"] for row in rows}) == 2
    for row in rows:
        photo, painting = row["job"].split("__")
        assert len(photo) <= MAX_NAME_PART and len(painting) <= MAX_NAME_PART and photo.startswith("p" * 40), row["job"]
        record = json.loads((out / row["job"] / "job.json").read_text())
        assert record["status"] == "done" and record["content"] == row["content"] and record["style"] == style
        assert (out / row["job"] / "generated.png").is_file()
    (group,) = (out / "groups").iterdir()
    assert len(group.name) < 255 and checkpoint(group / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert max(len(name) for _, dirs, files in os.walk(out) for name in dirs + files) < 255


def test_list_files_that_include_each_other_are_one_line(collection, capsys):
    (collection / "self.txt").write_text("photos/p0.png\nself.txt\n")
    (collection / "a.yaml").write_text("- b.txt\n")
    (collection / "b.txt").write_text("# the cycle goes on through a.yaml\na.yaml\n")
    (collection / "lists").mkdir()
    (collection / "lists" / "up.txt").write_text("../self.txt\n")
    for spec, cycle in [("self.txt", "self.txt -> self.txt"), ("a.yaml", "a.yaml -> b.txt -> a.yaml"), ("lists/up.txt", "self.txt -> self.txt")]:
        with pytest.raises(UserError, match="include each other in a cycle") as err:
            sources(spec, "--contents")
        assert f"({cycle})" in str(err.value).replace("lists/../", "")
        capsys.readouterr()
        assert batch(contents=(spec,)) == 2
        err_text = capsys.readouterr().err
        lines = [line for line in err_text.splitlines() if line.startswith("nst_lightning")]
        assert len(lines) == 1 and "Traceback" not in err_text and lines[0].startswith(f"nst_lightning: error: --contents {spec}: "), lines
        assert not (collection / "styled").exists()
    # The same list twice, or two lists naming a third, is no cycle: each image once.
    (collection / "both.txt").write_text("b1.txt\nb1.txt\nb2.txt\n")
    (collection / "b1.txt").write_text("photos/p1.png\n")
    (collection / "b2.txt").write_text("b1.txt\nphotos/p2.png\n")
    assert sources("both.txt", "--contents").images == ["photos/p1.png", "photos/p2.png"]
