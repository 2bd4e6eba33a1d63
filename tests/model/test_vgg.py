"""VGG19 layer naming, truncation, freezing and weight loading."""

import pytest
import torch
import torchvision
from torchvision.models import vgg19

from nst_lightning.model.vgg import LAYER_INDEX, VGG19Features, load_vgg19_features
from nst_lightning.utilities.errors import UserError


def test_paper_names_map_to_torchvision_indices():
    # conv names are the rectified outputs (the module after the convolution), as in the paper.
    assert LAYER_INDEX["conv1_1"] == LAYER_INDEX["relu1_1"] == 1
    assert LAYER_INDEX["pool1"] == 4
    assert LAYER_INDEX["conv2_1"] == 6
    assert LAYER_INDEX["conv3_1"] == 11
    assert LAYER_INDEX["conv4_1"] == 20
    assert LAYER_INDEX["conv4_2"] == 22
    assert LAYER_INDEX["conv5_1"] == 29
    assert LAYER_INDEX["conv5_2"] == 31
    assert LAYER_INDEX["pool5"] == 36
    features = vgg19().features
    for name, index in LAYER_INDEX.items():
        expected = torch.nn.MaxPool2d if name.startswith("pool") else torch.nn.ReLU
        assert isinstance(features[index], expected), name


@pytest.mark.parametrize(
    "layers, parameters",
    [
        (["conv1_1"], 1_792),
        (["conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"], 12_944_960),
        (["conv5_2"], 15_304_768),
    ],
)
def test_network_is_cut_after_the_deepest_layer_and_frozen(layers, parameters):
    vgg = VGG19Features(layers, weights="random")
    assert sum(p.numel() for p in vgg.parameters()) == parameters
    assert not any(p.requires_grad for p in vgg.parameters())
    assert len(vgg.features) == max(LAYER_INDEX[n] for n in layers) + 1


def test_forward_returns_named_post_relu_features():
    vgg = VGG19Features(["conv1_1", "pool1", "conv2_1"], weights="random")
    out = vgg(torch.rand(1, 3, 32, 32))
    assert set(out) == {"conv1_1", "pool1", "conv2_1"}
    assert out["conv1_1"].shape == (1, 64, 32, 32)
    assert out["pool1"].shape == (1, 64, 16, 16)
    assert out["conv2_1"].shape == (1, 128, 16, 16)
    assert out["conv1_1"].min() >= 0  # rectified


def test_random_weights_are_deterministic():
    a, b = load_vgg19_features("random"), load_vgg19_features("random")
    assert torch.equal(a[0].weight, b[0].weight)


@pytest.mark.parametrize("weights", ["random", "file"])
def test_a_network_cut_early_has_the_whole_ones_first_weights(weights, tmp_path):
    # Only the layers in use are drawn (or kept): the cut network is the whole one's beginning, so a run
    # that uses conv3_1 at most sees the same "random" VGG19 as one that goes to conv5_1.
    if weights == "file":
        torch.save(load_vgg19_features("random").state_dict(), tmp_path / "vgg.pth")
        weights = str(tmp_path / "vgg.pth")
    whole = load_vgg19_features(weights)
    cut = load_vgg19_features(weights, deepest=LAYER_INDEX["conv3_1"])
    assert len(cut) == LAYER_INDEX["conv3_1"] + 1
    for name, tensor in cut.state_dict().items():
        assert torch.equal(tensor, whole.state_dict()[name]) and torch.isfinite(tensor).all(), name


@pytest.mark.parametrize("prefix", ["", "features."])
def test_weights_from_file_features_or_whole_network(tmp_path, prefix):
    network = vgg19()
    state = network.features.state_dict() if not prefix else network.state_dict()
    path = tmp_path / "w.pth"
    torch.save(state, path)
    loaded = load_vgg19_features(str(path))
    assert torch.equal(loaded[34].weight, network.features[34].weight)


def test_bad_weight_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_vgg19_features(str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a loadable torch state dict"):
        load_vgg19_features(str(tmp_path / "junk.pth"))
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not a VGG19 state dict"):
        load_vgg19_features(str(tmp_path / "other.pth"))


def test_failed_download_names_the_local_file_option(monkeypatch, tmp_path):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached copy
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(UserError, match=r"could not download .*IMAGENET1K_V1.*--model\.weights PATH") as err:
        load_vgg19_features("IMAGENET1K_V1")
    assert "\n" not in str(err.value)


def test_unknown_layer_is_a_user_error():
    with pytest.raises(UserError, match="conv6_1"):
        VGG19Features(["conv6_1"], weights="random")


def test_average_pooling_replaces_every_max_pool_with_a_gain():
    from nst_lightning.model.vgg import AVG_POOL_GAIN, ScaledAvgPool2d

    layers = ["conv1_1", "conv2_1", "conv5_1"]
    vgg = VGG19Features(layers, weights="random", pooling="avg")
    pools = [m for m in vgg.features if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d))]
    assert len(pools) == 4 and all(isinstance(m, ScaledAvgPool2d) for m in pools)
    # [[1, 2], [3, 4]] averages to 2.5, times the gain 1.4: 3.5 (a max pool would give 4).
    out = pools[0](torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2))
    assert AVG_POOL_GAIN == 1.4 and out.item() == pytest.approx(3.5)
    # The conv weights are the same network's; only the pooling differs.
    same = VGG19Features(layers, weights="random")
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(vgg.features[0].weight, same.features[0].weight)
    assert torch.allclose(vgg(image)["conv1_1"], same(image)["conv1_1"])  # before the first pool
    assert not torch.allclose(vgg(image)["conv2_1"], same(image)["conv2_1"])  # after it


def test_channels_last_gives_the_same_features_and_image_gradient():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 40, 56)
    vgg = VGG19Features(["conv1_1", "conv3_1", "conv5_1"], "random")
    results = []
    for enabled in (False, True):
        vgg.use_channels_last(enabled)
        x = image.clone().requires_grad_(True)
        features = vgg(x)
        sum(f.square().mean() for f in features.values()).backward()
        results.append((features, x.grad))
        assert features["conv3_1"].is_contiguous(memory_format=torch.channels_last) == enabled
    (plain, plain_grad), (nhwc, nhwc_grad) = results
    for name in plain:
        torch.testing.assert_close(nhwc[name], plain[name], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(nhwc_grad, plain_grad, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("layers", [["conv1_1", "conv3_1", "conv5_1"], ["conv4_2", "relu4_2", "pool5"], ["conv1_2"]])
def test_activation_checkpointing_gives_the_same_features_and_gradient(layers):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 40, 56)
    results = []
    for enabled in (False, True):
        vgg = VGG19Features(layers, "random", activation_checkpointing=enabled)
        x = image.clone().requires_grad_(True)
        features = vgg(x)
        sum(f.square().mean() for f in features.values()).backward()
        results.append((features, x.grad))
    (plain, plain_grad), (recomputed, recomputed_grad) = results
    assert set(plain) == set(recomputed) == set(layers)
    for name in plain:
        assert torch.equal(recomputed[name], plain[name])
    # The same operations in the same order: equal up to the order of gradient accumulation.
    torch.testing.assert_close(recomputed_grad, plain_grad, rtol=1e-5, atol=1e-7)
