"""The optimiser family: every name builds its torch optimiser with the config's settings."""

import pytest
import torch

from salttune.config import OptimConfig, config_from_dict
from salttune.errors import SalttuneError
from salttune.optim import OPTIMIZERS, make_optimizer


def params():
    return [torch.nn.Parameter(torch.ones(3))]


@pytest.mark.parametrize(
    "name, cls",
    [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)],
)
def test_each_name_builds_its_optimiser_with_the_settings(name, cls):
    opt = make_optimizer(params(), OptimConfig(name=name, lr=0.01, weight_decay=0.001, momentum=0.8, nesterov=True))
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 0.001 and group["fused"] is True
    if name == "sgd":
        assert group["momentum"] == 0.8 and group["nesterov"] is True


def test_sgd_without_momentum_drops_nesterov():
    # torch refuses nesterov without momentum; the config may still ask for it
    opt = make_optimizer(params(), OptimConfig(name="sgd", momentum=0.0, nesterov=True))
    assert opt.param_groups[0]["nesterov"] is False


def test_sgd_step_value():
    p = params()
    opt = make_optimizer(p, OptimConfig(name="sgd", lr=0.5, momentum=0.0))
    p[0].grad = torch.tensor([1.0, -2.0, 0.0])
    opt.step()
    assert p[0].tolist() == [0.5, 2.0, 1.0]  # p - lr * grad


def test_config_choices_are_the_dict():
    assert config_from_dict({"optim": {"name": "adamw"}}).optim.name == "adamw"
    with pytest.raises(SalttuneError, match=f"'optim.name': unknown value 'lamb'; allowed: {', '.join(OPTIMIZERS)}"):
        config_from_dict({"optim": {"name": "lamb"}})
    with pytest.raises(SalttuneError, match="unknown 'lamb'; allowed: adam, adamw, sgd"):
        make_optimizer(params(), OptimConfig(name="lamb"))
