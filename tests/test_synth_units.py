"""Building blocks of the synthetic benchmark: edits, their meaning, captions, renderers."""

from __future__ import annotations

import numpy as np
import pytest

from cirlib.analysis.sanity import garment_agreement, scene_agreement
from cirlib.data.synth.garment_text import relative_captions, relative_phrase
from cirlib.data.synth.garments import Garment, random_garment, render_garment
from cirlib.data.synth.scene_edits import Edit, apply_chain, edit_between, loosen, realisations, sample_edit
from cirlib.data.synth.scenes import Scene, SceneObject, random_scene, render_scene

RED_CIRCLE = SceneObject(cell=0, shape="circle", colour="red", size="large")
BLUE_SQUARE = SceneObject(cell=4, shape="square", colour="blue", size="small")
SCENE = Scene.of("grey", [RED_CIRCLE, BLUE_SQUARE])


def test_add_with_free_size_and_cell_allows_every_empty_cell_in_both_sizes():
    allowed = realisations(SCENE, Edit("add", value={"shape": "star", "colour": "green"}))
    assert len(allowed) == 7 * 2
    assert all(len(s.objects) == 3 and SCENE.objects[0] in s.objects for s in allowed)


def test_object_edits_need_a_description_that_picks_out_one_object():
    assert realisations(SCENE, Edit("recolour", {"shape": "circle"}, {"colour": "green"}))[0].objects[0].colour == "green"
    two_circles = Scene.of("grey", [RED_CIRCLE, SceneObject(8, "circle", "blue", "small")])
    assert realisations(two_circles, Edit("remove", {"shape": "circle"})) == []
    assert len(realisations(two_circles, Edit("remove", {"shape": "circle", "colour": "blue"}))) == 1


def test_move_to_a_row_allows_each_free_cell_of_that_row():
    allowed = realisations(SCENE, Edit("move", {"shape": "square"}, {"row": 2}))
    assert sorted(next(o.cell for o in s.objects if o.shape == "square") for s in allowed) == [6, 7, 8]


def test_count_down_allows_removing_any_one_copy():
    scene = Scene.of("sand", [RED_CIRCLE, SceneObject(2, "circle", "red", "small"), BLUE_SQUARE])
    allowed = realisations(scene, Edit("count", {"shape": "circle", "colour": "red"}, {"delta": -1}))
    assert len(allowed) == 2 and all(len(s.objects) == 2 for s in allowed)


@pytest.mark.parametrize("seed", range(5))
def test_edit_between_recovers_a_random_single_edit(seed):
    rng = np.random.default_rng(seed)
    for _ in range(100):
        scene = random_scene(rng, 1, 3)
        edit = sample_edit(scene, rng)
        target = realisations(scene, edit)[0]
        found = edit_between(scene, target, rng)
        assert found is not None and target.key() in {s.key() for s in realisations(scene, found)}
        vaguer = loosen(found, rng, probability=1.0)
        assert target.key() in {s.key() for s in apply_chain(scene, [vaguer])}


def test_comparatives_are_used_only_where_they_name_one_value():
    rng = np.random.default_rng(0)
    from_long = {relative_phrase("dress", "sleeves", "long", "short", rng) for _ in range(200)}
    from_short = {relative_phrase("dress", "sleeves", "short", "sleeveless", rng) for _ in range(200)}
    assert "has shorter sleeves" not in from_long      # shorter than long: short or sleeveless
    assert "has shorter sleeves" in from_short         # shorter than short: only sleeveless


def test_relative_captions_refuse_identical_garments():
    garment = random_garment("dress", np.random.default_rng(0))
    with pytest.raises(ValueError, match="identical"):
        relative_captions(garment, garment, np.random.default_rng(0))


def test_renderers_are_pure_functions_of_their_random_stream():
    garment = random_garment("shirt", np.random.default_rng(1))
    a = render_garment(garment, np.random.default_rng(5))
    assert a.tobytes() == render_garment(garment, np.random.default_rng(5)).tobytes()
    assert a.tobytes() != render_garment(garment, np.random.default_rng(6)).tobytes()
    assert render_scene(SCENE, np.random.default_rng(5)).size == (128, 96)


def test_agreement_scores():
    a = Garment("dress", "red", "solid", "short", "long", "round", "none")
    b = a.replace(colour="blue", graphic="star")
    assert garment_agreement([a], [a, b]).tolist() == [[6.0, 4.0]]
    other = Scene.of("grey", [RED_CIRCLE])
    scores = scene_agreement([SCENE], [SCENE, other])
    assert scores[0, 0] == 1.0 and 0.0 < scores[0, 1] < 1.0
