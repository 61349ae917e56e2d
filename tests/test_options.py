"""One declaration per training option: flag, help, check, config.json key and fit keyword (issue 19)."""

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from pyrovae import PyroVAEError, RunConfig, TrainOptions
from pyrovae.cli import build_parser
from pyrovae.options import add_flags, given_options, option, options_table, positive_number, resumable


@dataclass
class WithDecay(TrainOptions):
    """TrainOptions plus one option declared here, as docs/cli.md's example adds one."""

    lr_decay: float = option(1.0, "multiply the learning rate by this after every epoch", check=positive_number,
                             metavar="G")


def test_a_new_option_gets_a_flag_a_check_a_key_and_a_keyword():
    parser = argparse.ArgumentParser()
    add_flags(parser, WithDecay)
    args = parser.parse_args(["--lr-decay", "0.9", "--epochs", "3"])
    assert given_options(args, WithDecay) == {"lr_decay": 0.9, "epochs": 3}
    built = WithDecay(**given_options(args, WithDecay))
    assert built.to_dict()["lr_decay"] == 0.9 and WithDecay(**built.to_dict()) == built
    assert built.with_overrides({"lr_decay": 0.5}).lr_decay == 0.5
    with pytest.raises(PyroVAEError, match="lr-decay must be positive and finite, got 0"):
        built.with_overrides({"lr_decay": 0})
    assert "multiply the learning rate" in parser.format_help()
    assert ["`--lr-decay G`", "1", "multiply the learning rate by this after every epoch.", "no"] in \
        [[f"`{r[0]}`", *r[1:]] for r in options_table(WithDecay)[1]]


def test_every_training_option_is_a_train_flag_and_a_config_key():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions}
    for f in dataclasses.fields(TrainOptions):
        assert f.name in dests, f.name
        assert f.name in RunConfig().to_dict()


def test_resumable_options_are_the_declared_ones():
    assert resumable(RunConfig) == ("epochs", "samples", "curve_points", "lr", "device", "threads", "keep_denormals",
                                    "step", "checkpoint_every", "tensorboard", "data_dir")


def test_unknown_and_bad_options_are_one_line():
    with pytest.raises(PyroVAEError, match="unknown training option lr_decay; the options are"):
        TrainOptions().with_overrides({"lr_decay": 0.9})
    with pytest.raises(PyroVAEError, match="estimator 'iwae' has no separate KL term"):
        TrainOptions(estimator="iwae", beta=2.0)
    with pytest.raises(PyroVAEError, match="unknown device 'gpu0'"):
        TrainOptions(device="gpu0")


def test_old_config_keys_still_load():
    old = {**RunConfig().to_dict(), "particles": 4}
    del old["num_particles"]
    assert RunConfig.from_dict(old).num_particles == 4
