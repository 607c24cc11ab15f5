"""Feeds for a model: seeded random tensors for every graph input, or a user's .npz, checked.

``axes``: which symbolic axis of each input is the batch and which the sequence; ``tokens``:
token inputs and their padding; ``batch``: the batch and seq_len fed, against what the model
fixes; ``synth``: seeded random feeds; ``given``: an .npz's feeds, checked; ``inputs``: what
was fed, for the report.
"""

from lstm_bench.feeds.axes import InputSpec, input_specs
from lstm_bench.feeds.batch import fed_seq_len, feed_shapes, fit_batches
from lstm_bench.feeds.given import check_given, load_inputs
from lstm_bench.feeds.inputs import Given, Inputs
from lstm_bench.feeds.synth import describe_random, make_inputs
from lstm_bench.feeds.tokens import token_vocab

__all__ = ["Given", "InputSpec", "Inputs", "check_given", "describe_random", "fed_seq_len", "feed_shapes",
           "fit_batches", "input_specs", "load_inputs", "make_inputs", "token_vocab"]
